from django.conf import settings
from django.db import models


class GroundTruthValue(models.TextChoices):
    PRESENT = "PRESENT"
    ABSENT = "ABSENT"
    ABSTAIN = "ABSTAIN"


class Annotation(models.Model):
    """Ground truth of one (sample, class). No row means ABSTAIN (no label)."""

    sample = models.ForeignKey("datasets.Sample", on_delete=models.CASCADE, related_name="annotations")
    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="annotations")
    value = models.CharField(
        max_length=8, choices=[(GroundTruthValue.PRESENT, "Present"), (GroundTruthValue.ABSENT, "Absent")]
    )
    version = models.PositiveIntegerField(default=1)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["sample", "label_class"], name="unique_annotation")]
        indexes = [models.Index(fields=["label_class", "value", "sample"], name="annotation_class_value")]


class AnnotationSource(models.TextChoices):
    API = "api"
    BULK = "bulk"
    IMPORT = "import"
    UNDO = "undo"


class AnnotationEvent(models.Model):
    """One change of ground truth: who, when, old -> new."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="+")
    sample = models.ForeignKey("datasets.Sample", on_delete=models.CASCADE, related_name="annotation_events")
    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="+")
    old_value = models.CharField(max_length=8, choices=GroundTruthValue.choices)
    new_value = models.CharField(max_length=8, choices=GroundTruthValue.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, choices=AnnotationSource.choices)
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["dataset", "id"], name="annotation_event_dataset")]
