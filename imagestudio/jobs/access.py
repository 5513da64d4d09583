"""Short-lived signed access to one job's progress, for clients that cannot send an Authorization header.

A browser's EventSource cannot set headers, so the API hands out, in every Job payload, an events URL whose
query carries `access=<token>`: Django's signing (HMAC keyed from SECRET_KEY, with a timestamp) over the job
id and the user id. It opens that job's progress stream for that user until it is JOB_EVENTS_ACCESS_SECONDS
old, and nothing else; the user must still be active and still see the job.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Job

_SALT = "imagestudio.jobs.access"


def job_access_token(*, job: Job, user: User) -> str:
    return signing.dumps({"job": str(job.pk), "user": user.pk}, salt=_SALT, compress=False)


def job_access_user(*, token: str, job_id: uuid.UUID | str) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this job; else None."""
    try:
        claims = signing.loads(token, salt=_SALT, max_age=settings.JOB_EVENTS_ACCESS_SECONDS)
        job_uuid = uuid.UUID(str(job_id))
    except (signing.BadSignature, ValueError):  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(claims, dict) or claims.get("job") != str(job_uuid):
        return None
    return get_user_model().objects.filter(pk=claims.get("user"), is_active=True).first()
