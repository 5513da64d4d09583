"""Reads of API tokens. A user sees only their own live tokens (neither revoked nor expired)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone

from imagestudio.common.ids import parse_id

from .keys import key_digest, key_prefix
from .models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def token_list(*, user: User) -> QuerySet:
    """The user's live tokens, newest first."""
    live = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    return ApiToken.objects.filter(live, user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def token_get(*, user: User, token_id: str) -> ApiToken | None:
    """One of the user's live tokens by its id (any text: what is not an id names no token)."""
    pk = parse_id(str(token_id))
    return None if pk is None else token_list(user=user).filter(pk=pk).first()


def token_by_key(*, key: str) -> ApiToken | None:
    """The token (live or not) whose secret `key` is, with its user. Rows are found by the non-secret prefix and
    the digests compared in constant time, so response times say nothing about how close a guess came."""
    digest = key_digest(key)
    for token in ApiToken.objects.filter(prefix=key_prefix(key)).select_related("user"):
        if hmac.compare_digest(token.digest, digest):
            return token
    return None
