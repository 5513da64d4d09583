"""Short-lived signed access to one job's progress, for clients that cannot send an Authorization header.

A browser's EventSource cannot set headers, so the API hands out, in every Job payload, an events URL whose
query carries `access=<token>`: Django's signing (HMAC keyed from SECRET_KEY) over the job id, the user id and
an expiry. It opens that job's progress stream for that user for at least JOB_EVENTS_ACCESS_SECONDS, and nothing
else; the user must still be active and still see the job. The expiry is rounded up to a quarter of that
lifetime, so the payloads of one job read within a few minutes carry the same URL (a page compares, caches
and pages through them as the same data).
"""

from __future__ import annotations

import math
import time
import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Job

_SALT = "imagestudio.jobs.access"


def _expiry(now: float) -> int:
    lifetime = settings.JOB_EVENTS_ACCESS_SECONDS
    step = max(lifetime // 4, 1)
    return int(math.ceil((now + lifetime) / step) * step)


def job_access_token(*, job: Job, user: User, now: float | None = None) -> str:
    claims = {"job": str(job.pk), "user": user.pk, "exp": _expiry(time.time() if now is None else now)}
    return signing.Signer(salt=_SALT).sign_object(claims)


def job_access_user(*, token: str, job_id: uuid.UUID | str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this job; else None."""
    try:
        claims = signing.Signer(salt=_SALT).unsign_object(token)
        job_uuid = uuid.UUID(str(job_id))
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(claims, dict) or claims.get("job") != str(job_uuid):
        return None
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires < (time.time() if now is None else now):
        return None
    return get_user_model().objects.filter(pk=claims.get("user"), is_active=True).first()
