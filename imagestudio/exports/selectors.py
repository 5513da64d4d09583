"""Reads of exports."""

from django.db.models import QuerySet

from .models import Export


def export_list(*, dataset) -> QuerySet:
    """The dataset's exports, newest first."""
    return Export.objects.filter(dataset=dataset).order_by("-id")
