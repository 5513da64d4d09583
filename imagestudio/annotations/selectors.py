"""Reads of ground truth and its history."""

from .models import Annotation, AnnotationEvent


def _narrow(queryset, *, sample_id=None, label_class=None, **exact):
    if sample_id is not None:
        queryset = queryset.filter(sample_id=sample_id)
    if label_class is not None:
        queryset = queryset.filter(label_class=label_class)
    return queryset.filter(**{name: value for name, value in exact.items() if value is not None})


def annotation_list(*, dataset, sample_id=None, label_class=None, value=None):
    queryset = Annotation.objects.filter(sample__dataset=dataset).select_related("label_class", "updated_by")
    return _narrow(queryset, sample_id=sample_id, label_class=label_class, value=value).order_by("id")


def annotation_history(*, dataset, sample_id=None, label_class=None, user=None, source=None, batch=None):
    """Changes newest first."""
    queryset = AnnotationEvent.objects.filter(dataset=dataset).select_related("label_class", "user")
    return _narrow(queryset, sample_id=sample_id, label_class=label_class, user=user, source=source,
                   batch=batch).order_by("-id")
