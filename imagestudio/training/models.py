from django.conf import settings
from django.db import models
from django.utils import timezone


class TrainingSet(models.Model):
    """An immutable snapshot: the active LFs (ids, configs, thresholds), the samples and the seed, and the
    label model's output per sample and class. The same inputs hash the same, so building twice returns it."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="training_sets")
    content_hash = models.CharField(max_length=64)
    snapshot = models.JSONField(default=dict)
    report = models.JSONField(default=dict)  # per class: label model chosen, dev scores, learned accuracies
    artifact = models.CharField(max_length=512, blank=True, default="")  # npz: ids, probabilities, labels, votes
    artifact_sha256 = models.CharField(max_length=64, blank=True, default="")
    samples = models.PositiveIntegerField(default=0)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # When a request last asked for this set's inputs (its creation, or a POST training-sets/ answering it): the
    # dataset's latest set, which models, analysis and exports default to, is the ready one asked for last.
    requested_at = models.DateTimeField(default=timezone.now)
    ready = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "content_hash"], name="one_snapshot_per_hash")]


class FastModel(models.Model):
    """Logistic regressions (one per class) on embeddings, trained as a job on the `training` queue."""

    class LabelSource(models.TextChoices):
        TRAINING_SET = "training_set"
        GROUND_TRUTH = "ground_truth"

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="fast_models")
    version = models.PositiveIntegerField()  # per dataset: 1, 2, ...
    label_source = models.CharField(max_length=16, choices=LabelSource.choices)
    training_set = models.ForeignKey(TrainingSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    params = models.JSONField(default=dict)  # classes, splits, negative_ratio, seed, encoder
    metrics = models.JSONField(default=dict)  # per class, against valid ground truth
    artifact = models.CharField(max_length=512, blank=True, default="")  # npz of coefficients: no pickle
    artifact_sha256 = models.CharField(max_length=64, blank=True, default="")
    ready = models.BooleanField(default=False)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="one_model_version")]

    def __str__(self):
        """How messages name it: by the id the API addresses it with, and its version within the dataset."""
        return f"model {self.id} (v{self.version})"


# A training set's or model's state: ready, or the status of the job that makes it.
PRODUCT_STATUSES = ("ready", "queued", "running", "failed", "cancelled")
PREDICTION_LABELS = ("PRESENT", "ABSENT")  # a model's label for a sample: its score is >= 0, or below


class Prediction(models.Model):
    """A PRESENT prediction of a model for one sample and class: what the samples list filters on.

    A sample inside one of the model's ScoredRanges without a row here was predicted ABSENT. Scores,
    probabilities and labels of every sample live in the model's artifact; the database keeps only what SQL
    filters need, so a model over 500,000 samples writes its positives, not 500,000 rows. Written by COPY in
    bulk, so one index only (the key) and no database foreign-key checks. Rows go with their model (by the
    key's prefix) or class; samples are only ever deleted with their dataset, whose models take the rows along,
    hence no cascade (and no index) from the sample side."""

    pk = models.CompositePrimaryKey("model", "label_class", "sample")
    model = models.ForeignKey(FastModel, on_delete=models.CASCADE, related_name="predictions",
                              db_constraint=False, db_index=False)
    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="+",
                                    db_constraint=False, db_index=False)
    sample = models.ForeignKey("datasets.Sample", on_delete=models.DO_NOTHING, related_name="+",
                               db_constraint=False, db_index=False)


class ScoredRange(models.Model):
    """Samples `low`..`high` (ids, inclusive) of the model's dataset were all scored by it: a run of consecutive
    samples that had embeddings when it trained. Samples only ever get new, higher ids, so a run never gains
    an unscored sample; a fully embedded dataset is one run."""

    model = models.ForeignKey(FastModel, on_delete=models.CASCADE, related_name="scored_ranges", db_index=False)
    low = models.BigIntegerField()
    high = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["model", "low"], name="scored_range_model_low")]
