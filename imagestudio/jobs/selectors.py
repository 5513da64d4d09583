"""Reads of jobs: a user sees the jobs of datasets they are a member of (a removed member no longer does), and
the dataset-less jobs they created."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from .models import Job

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def job_list_visible(*, user: User) -> QuerySet:
    if user.is_superuser:
        return Job.objects.all()
    return Job.objects.filter(Q(dataset__memberships__user=user) | Q(creator=user, dataset__isnull=True))


def job_list(*, user: User, dataset: int | None = None, status: str | None = None,
             kind: str | None = None) -> QuerySet:
    """Visible jobs, newest first, optionally of one dataset (an id), status or kind."""
    jobs = job_list_visible(user=user).select_related("creator").order_by("-created_at", "id")
    narrow = {"dataset_id": dataset, "status": status, "kind": kind}
    return jobs.filter(**{name: value for name, value in narrow.items() if value is not None})


def job_get(*, user: User, job_id: uuid.UUID | str) -> Job | None:
    """A visible job by its id (any text: what is not a UUID names no job)."""
    try:
        job_uuid = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return job_list_visible(user=user).select_related("creator").filter(pk=job_uuid).first()


def job_state(*, job_id: uuid.UUID | str) -> dict | None:
    """What a watcher of the job compares between polls: status, progress, message and updated_at (which every
    change of the job moves). One primary-key read of four columns, cheap enough to poll."""
    return Job.objects.filter(pk=job_id).values("status", "progress", "message", "updated_at").first()
