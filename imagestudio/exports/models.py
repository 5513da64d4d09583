from django.conf import settings
from django.db import models


class Export(models.Model):
    class Kind(models.TextChoices):
        DATASET = "dataset"
        TRAINING_LABELS = "training_labels"

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    params = models.JSONField(default=dict)
    file = models.CharField(max_length=512, blank=True, default="")
    rows = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    ready = models.BooleanField(default=False)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
