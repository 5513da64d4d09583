"""Short-lived signed access to one object, for clients that cannot send an Authorization header: a browser's
EventSource (a job's progress stream), an `<a download>` link (an export's CSV).

A URL's query carries `access=<token>`: Django's signing (HMAC keyed from SECRET_KEY, salted per kind) over the
object's id, the user's id and an expiry. It opens that object's resource for that user for at least `lifetime`
seconds, and nothing else; the user must still be active and still see the object. The expiry is rounded up to a
quarter of the lifetime, so the payloads of one object read within a few minutes carry the same URL (a page
compares, caches and pages through them as the same data).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core import signing

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _signer(kind: str) -> signing.Signer:
    return signing.Signer(salt=f"imagestudio.{kind}s.access")  # a job's token opens no export, and the reverse


def _expiry(now: float, lifetime: int) -> int:
    step = max(lifetime // 4, 1)
    return int(math.ceil((now + lifetime) / step) * step)


def access_token(*, kind: str, object_id: str, user: User, lifetime: int, grant: int | None = None,
                 now: float | None = None) -> str:
    """grant: the id of the API token the request that asked for the URL was made with: the URL dies with it (a
    sign-out, a rotation), not only at its expiry (`access_grant`)."""
    claims = {kind: object_id, "user": user.pk, "exp": _expiry(time.time() if now is None else now, lifetime)}
    if grant is not None:
        claims["grant"] = grant
    return _signer(kind).sign_object(claims)


def _claims(token: str, kind: str, object_id: str, now: float | None) -> dict | None:
    """The token's claims when it is genuine, unexpired and names this object; else None."""
    try:
        claims = _signer(kind).unsign_object(token)
    except signing.BadSignature:
        return None
    if not isinstance(claims, dict) or claims.get(kind) != object_id:
        return None
    expires = claims.get("exp")
    return claims if isinstance(expires, int) and expires >= (time.time() if now is None else now) else None


def access_user(*, token: str, kind: str, object_id: str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this object; else None."""
    claims = _claims(token, kind, object_id, now)
    return None if claims is None else get_user_model().objects.filter(pk=claims.get("user"), is_active=True).first()


def access_grant(*, token: str, kind: str, object_id: str) -> int | None:
    """The id of the API token a genuine access token was issued under (None: a session's, or none recorded)."""
    claims = _claims(token, kind, object_id, None)
    grant = None if claims is None else claims.get("grant")
    return grant if isinstance(grant, int) else None
