"""A job's events URL: signed, short-lived access to its progress stream (imagestudio.common.access), valid
JOB_EVENTS_ACCESS_SECONDS."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings

from imagestudio.common.access import access_grant, access_token, access_user

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Job


def job_access_token(*, job: Job, user: User, grant: int | None = None, now: float | None = None) -> str:
    return access_token(kind="job", object_id=str(job.pk), user=user, lifetime=settings.JOB_EVENTS_ACCESS_SECONDS,
                        grant=grant, now=now)


def job_access_user(*, token: str, job_id: uuid.UUID | str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this job; else None."""
    job_key = _job_key(job_id)
    return None if job_key is None else access_user(token=token, kind="job", object_id=job_key, now=now)


def job_access_grant(*, token: str, job_id: uuid.UUID | str) -> int | None:
    """The API token id the events URL was issued under (common.access.access_grant)."""
    job_key = _job_key(job_id)
    return None if job_key is None else access_grant(token=token, kind="job", object_id=job_key)


def _job_key(job_id):
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        return None
