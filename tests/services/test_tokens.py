"""Token services: use recorded at most once a minute, old revoked and expired rows pruned, rotation keeps the
lifetime, login names bounded."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from imagestudio.accounts.keys import key_digest
from imagestudio.accounts.models import ApiToken
from imagestudio.accounts.selectors import token_by_key
from imagestudio.accounts.services import (
    NAME_MAX_LENGTH,
    TOKEN_RETENTION,
    login_token_name,
    token_create,
    token_revoke,
    token_rotate,
    token_touch,
)

pytestmark = pytest.mark.django_db


def stored(token):
    token.refresh_from_db()
    return token


def test_use_is_recorded_at_most_once_a_minute(owner):
    token = token_create(user=owner, name="s", lifetime=None).token
    start = timezone.now()
    token_touch(token=token, now=start)
    assert stored(token).last_used_at == start
    token_touch(token=token, now=start + timedelta(seconds=59))
    assert stored(token).last_used_at == start
    token_touch(token=token, now=start + timedelta(seconds=61))
    assert stored(token).last_used_at == start + timedelta(seconds=61)


def test_a_stale_copy_does_not_write_over_a_newer_use(owner):
    token = token_create(user=owner, name="s", lifetime=None).token
    stale_copy = ApiToken.objects.get(pk=token.pk)
    now = timezone.now()
    token_touch(token=token, now=now)
    token_touch(token=stale_copy, now=now + timedelta(seconds=1))  # another request, read before the first wrote
    assert stored(token).last_used_at == now


def test_issuing_prunes_the_users_long_dead_tokens_only(owner, stranger):
    long_ago = timezone.now() - TOKEN_RETENTION - timedelta(days=1)
    revoked_long_ago = token_create(user=owner, name="a", lifetime=None).token
    token_revoke(token=revoked_long_ago, now=long_ago)
    expired_long_ago = token_create(user=owner, name="b", lifetime=timedelta(days=1)).token
    ApiToken.objects.filter(pk=expired_long_ago.pk).update(expires_at=long_ago)
    revoked_lately = token_create(user=owner, name="c", lifetime=None).token
    token_revoke(token=revoked_lately)
    strangers = token_create(user=stranger, name="d", lifetime=None).token
    token_revoke(token=strangers, now=long_ago)
    token_create(user=owner, name="new", lifetime=None)
    assert set(ApiToken.objects.values_list("name", flat=True)) == {"c", "d", "new"}


def test_rotating_a_token_that_never_expires_gives_one_that_never_expires(owner):
    issued = token_create(user=owner, name="ci", lifetime=None)
    rotated = token_rotate(token=issued.token)
    assert rotated.token.expires_at is None and rotated.token.name == "ci"
    assert token_by_key(key=issued.key).revoked_at is not None
    assert token_by_key(key=rotated.key).pk == rotated.token.pk


def test_keys_sharing_a_prefix_are_told_apart(owner):
    first = token_create(user=owner, name="a", lifetime=None)
    twin_key = first.key[:12] + "x" * 40
    twin = ApiToken.objects.create(user=owner, name="b", prefix=first.token.prefix, digest=key_digest(twin_key))
    assert token_by_key(key=first.key).pk == first.token.pk
    assert token_by_key(key=twin_key).pk == twin.pk
    assert token_by_key(key=first.key[:12] + "y" * 40) is None


@given(st.text())
def test_login_names_are_bounded_printable_text(user_agent):
    name = login_token_name(user_agent)
    assert name.startswith("login") and len(name) <= NAME_MAX_LENGTH
    assert name.isascii() and name.isprintable()
