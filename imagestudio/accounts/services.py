"""Writes of API tokens: issue (login, named tokens for scripts), rotate, revoke, record use.

The secret is returned once, by the service that makes it; only its digest is stored (see keys.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from imagestudio.common.errors import NotFound, ValidationFailed

from .keys import key_digest, key_new, key_prefix
from .models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Revoked and expired rows stay this long, so that using one says why it fails; then the next issue removes them.
TOKEN_RETENTION = timedelta(days=30)
# last_used_at is written at most this often per token: one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
NAME_MAX_LENGTH = 100
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # the secret: show it once, store it nowhere


def token_default_lifetime() -> timedelta | None:
    """TOKEN_TTL_DAYS as a duration; 0 means tokens issued by default never expire."""
    days = settings.TOKEN_TTL_DAYS
    return timedelta(days=days) if days > 0 else None


def token_create(*, user: User, name: str, lifetime: timedelta | None) -> IssuedToken:
    """A new token for the user named `name`, expiring after `lifetime` (None: never)."""
    now = timezone.now()
    _prune(user=user, now=now)
    key = key_new()
    token = ApiToken.objects.create(user=user, name=name[:NAME_MAX_LENGTH], prefix=key_prefix(key),
                                    digest=key_digest(key), created_at=now,
                                    expires_at=None if lifetime is None else now + lifetime)
    return IssuedToken(token=token, key=key)


def token_login(*, user: User, user_agent: str) -> IssuedToken:
    """A new token for a password login, named after the client, with the default lifetime."""
    return token_create(user=user, name=login_token_name(user_agent), lifetime=token_default_lifetime())


def login_token_name(user_agent: str) -> str:
    """`login`, and the client's User-Agent in printable ASCII, within the name's length."""
    agent = _NOT_PRINTABLE.sub(" ", user_agent).strip()
    return f"login ({agent[:NAME_MAX_LENGTH - 8]})" if agent else "login"


def token_for(*, user: User, name: str = "quickstart") -> str:
    """The key of a new token for the user with the default lifetime (quick start, tests, benchmarks)."""
    return token_create(user=user, name=name, lifetime=token_default_lifetime()).key


@transaction.atomic
def token_rotate(*, token: ApiToken) -> IssuedToken:
    """A new secret for the token: a new token with its name and lifetime, and the old one revoked."""
    current = ApiToken.objects.select_for_update().filter(pk=token.pk, revoked_at__isnull=True).first()
    if current is None or current.expired():
        raise NotFound("No such token: it was revoked or has expired.")
    lifetime = None if current.expires_at is None else current.expires_at - current.created_at
    issued = token_create(user=current.user, name=current.name, lifetime=lifetime)
    token_revoke(token=current, now=issued.token.created_at)
    return issued


def token_revoke(*, token: ApiToken, now: datetime | None = None) -> None:
    """Revoke the token (its key answers 401 from now on); revoking twice changes nothing."""
    now = now or timezone.now()
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.revoked_at = token.revoked_at or now


def token_touch(*, token: ApiToken, now: datetime | None = None) -> None:
    """Record that the token was used, at most once per LAST_USED_RESOLUTION (a conditional UPDATE, so
    concurrent requests write once)."""
    now = now or timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk).update(
        last_used_at=now)
    token.last_used_at = now


def _prune(*, user: User, now: datetime) -> None:
    cutoff = now - TOKEN_RETENTION
    ApiToken.objects.filter(Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff), user=user).delete()


def user_create(*, username: str, password: str | None, email: str = "") -> User:
    """A user who can sign in with `password` (checked by AUTH_PASSWORD_VALIDATORS), or with tokens only when
    it is None. ValidationFailed when the name is taken or the password is refused."""
    model = get_user_model()
    try:
        model.username_validator(username)
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="invalid_username") from exc
    if model.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(f"A user named {username!r} exists already.", code="user_exists")
    user = model(username=username, email=email)
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), code="password_refused") from exc
        user.set_password(password)
    user.save()
    return user
