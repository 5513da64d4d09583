"""Reads of embedding coverage and dedicated resources."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from .models import EmbeddingSet, ResourceAllocation

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset


def embedding_set_list(*, dataset: Dataset) -> QuerySet:
    return EmbeddingSet.objects.filter(dataset=dataset).select_related("encoder", "dataset").order_by("id")


def resource_idle_cutoff() -> datetime:
    """Allocations unused since before this are expired (released by `resources_expire`)."""
    return timezone.now() - timezone.timedelta(seconds=settings.RESOURCE_IDLE_SECONDS)


def resource_list(*, dataset: Dataset) -> QuerySet:
    """The dataset's live allocations: an idle one is gone from the list before the sweep releases it."""
    return (ResourceAllocation.objects.filter(dataset=dataset, last_used_at__gte=resource_idle_cutoff())
            .select_related("encoder").order_by("id"))
