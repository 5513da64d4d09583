from django.conf import settings
from django.db import models


class GroundTruthValue(models.TextChoices):
    PRESENT = "PRESENT"
    ABSENT = "ABSENT"
    ABSTAIN = "ABSTAIN"


LABEL_VALUES = (GroundTruthValue.PRESENT, GroundTruthValue.ABSENT)


class Annotation(models.Model):
    """Ground truth of one (sample, class): PRESENT, ABSENT, or ABSTAIN (no label).

    No row also means ABSTAIN. A cleared label keeps its row (value ABSTAIN) so that `version` only
    ever grows: a writer holding an old version always gets a conflict, never a silent overwrite.
    """

    sample = models.ForeignKey("datasets.Sample", on_delete=models.CASCADE, related_name="annotations")
    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="annotations")
    value = models.CharField(max_length=8, choices=GroundTruthValue.choices)
    version = models.PositiveIntegerField(default=1)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["sample", "label_class"], name="unique_annotation")]
        indexes = [models.Index(fields=["label_class", "value", "sample"], name="annotation_class_value")]


class GroundTruthCount(models.Model):
    """PRESENT and ABSENT counts per (class, split), kept current by every write, so counts never scan samples."""

    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="counts")
    split = models.CharField(max_length=8)
    present = models.BigIntegerField(default=0)
    absent = models.BigIntegerField(default=0)
    # Grows with every committed write of the row (each label change moves a count): the sum over a class's rows
    # changes with every commit of a change of its labels, whatever order the writers commit in (unlike the ids of
    # their events, taken at insert). Caches of ground truth are keyed by it (selectors.py).
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["label_class", "split"]
        constraints = [models.UniqueConstraint(fields=["label_class", "split"], name="unique_count_per_class_split")]


class AnnotationBatch(models.Model):
    """One bulk action, so that a user can undo their last one."""

    id = models.UUIDField(primary_key=True)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    value = models.CharField(max_length=8, choices=GroundTruthValue.choices)
    changed = models.PositiveIntegerField(default=0)
    undone_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


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
    batch = models.ForeignKey(AnnotationBatch, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["dataset", "id"], name="annotation_event_dataset"),
            models.Index(fields=["sample", "id"], name="annotation_event_sample"),
        ]
