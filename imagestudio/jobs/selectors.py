"""Reads of jobs: a user sees the jobs of datasets they are a member of (a removed member no longer does), and
the dataset-less jobs they created."""

import uuid

from django.db.models import Q, QuerySet

from .models import Job


def job_list_visible(*, user) -> QuerySet:
    if user.is_superuser:
        return Job.objects.all()
    return Job.objects.filter(Q(dataset__memberships__user=user) | Q(creator=user, dataset__isnull=True))


def job_list(*, user, dataset=None, status=None, kind=None) -> QuerySet:
    """Visible jobs, newest first, optionally of one dataset (an id), status or kind."""
    jobs = job_list_visible(user=user).select_related("creator").order_by("-created_at", "id")
    narrow = {"dataset_id": dataset, "status": status, "kind": kind}
    return jobs.filter(**{name: value for name, value in narrow.items() if value is not None})


def job_get(*, user, job_id) -> Job | None:
    """A visible job by its id (any text: what is not a UUID names no job)."""
    try:
        job_uuid = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return job_list_visible(user=user).select_related("creator").filter(pk=job_uuid).first()
