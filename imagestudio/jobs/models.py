import uuid

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(models.TextChoices):
    """What a job does; each kind has its own params and result (documented per kind in the API schema)."""

    IMPORT = "import"
    EMBEDDINGS = "embeddings"
    LF_VOTES = "lf_votes"
    TRAINING_SET = "training_set"
    FAST_MODEL = "fast_model"
    AUTO_TRAIN = "auto_train"
    EXPORT = "export"


class Job(models.Model):
    """One unit of async work: the one truth for its status, progress and result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Identifies "the same work" so a repeated request returns the job already in flight.
    dedupe_key = models.CharField(max_length=128, blank=True, default="", db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    # The task that runs it, so a job whose worker died can be delivered again (see jobs.liveness).
    task_name = models.CharField(max_length=200, blank=True, default="")
    # Written by the process running the job every JOB_HEARTBEAT_SECONDS; empty where tasks run in-process.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["dataset", "kind", "dedupe_key", "status"])]

    def __str__(self):
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_active(self):
        return self.status in ACTIVE_STATUSES
