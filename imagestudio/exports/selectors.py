"""Reads of exports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from .models import Export

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset


def export_list(*, dataset: Dataset) -> QuerySet:
    """The dataset's exports, newest first."""
    return Export.objects.filter(dataset=dataset).order_by("-id")
