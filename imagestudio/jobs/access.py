"""A job's events URL: signed, short-lived access to its progress stream (imagestudio.common.access), valid
JOB_EVENTS_ACCESS_SECONDS."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings

from imagestudio.common.access import access_token, access_user

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Job


def job_access_token(*, job: Job, user: User, now: float | None = None) -> str:
    return access_token(kind="job", object_id=str(job.pk), user=user, lifetime=settings.JOB_EVENTS_ACCESS_SECONDS,
                        now=now)


def job_access_user(*, token: str, job_id: uuid.UUID | str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this job; else None."""
    try:
        job_uuid = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return access_user(token=token, kind="job", object_id=str(job_uuid), now=now)
