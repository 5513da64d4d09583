import uuid

from django.conf import settings
from django.db import models


class EncoderRecord(models.Model):
    """An encoder with exact weights. A changed checkpoint is a new identity, so vectors never mix."""

    key = models.CharField(max_length=64)  # "open_clip" or "conse-offline"
    identity = models.CharField(max_length=200, unique=True)  # key, model and a hash of the weights, #space
    dim = models.PositiveIntegerField()
    space = models.CharField(max_length=16, default="joint")  # see encoders.SPACES
    # encoders.config_fingerprint of the config that loaded these weights: finds the record without loading them
    fingerprint = models.CharField(max_length=1000, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.identity


class Embedding(models.Model):
    """One sample's vector under one encoder (float16 bytes, L2-normalised). Unique: exactly one per pair."""

    sample = models.ForeignKey("datasets.Sample", on_delete=models.CASCADE, related_name="embeddings")
    encoder = models.ForeignKey(EncoderRecord, on_delete=models.CASCADE, related_name="+")
    vector = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["encoder", "sample"], name="one_vector_per_sample")]


class EmbeddingSet(models.Model):
    """The vectors of one dataset under one encoder; `version` grows with every added batch (cache key), and
    `generation` changes with it: a fresh random name for the matrix files, which a recreated database (ids and
    versions starting again at 1) can never reuse by accident."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="embedding_sets")
    encoder = models.ForeignKey(EncoderRecord, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)
    generation = models.UUIDField(default=uuid.uuid4)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "encoder"], name="one_set_per_dataset_encoder")]


class ResourceAllocation(models.Model):
    """Dedicated resources: the dataset's matrices stay pinned in memory while this row lives."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="allocations")
    encoder = models.ForeignKey(EncoderRecord, on_delete=models.CASCADE, related_name="+")
    bytes = models.PositiveBigIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "encoder"], name="one_allocation_per_matrix")]
