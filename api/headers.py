"""Conditional requests (RFC 9110): ETags, If-Match and its 412, on versioned resources (LFs, labels: the
version decides) and on the others (the digest of what a write may change decides)."""

import hashlib
import json
import re
from contextlib import contextmanager

from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.exceptions import PreconditionFailed
from imagestudio.common.errors import VersionConflict
from imagestudio.common.transactions import row_locked, row_values

IF_MATCH_CURRENT = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False,
    description="The ETag of your GET of this resource (or a list of ETags). When what a write may change (a name, "
                "a description, a split, metadata, a role, a body) has changed since, the request answers 412 "
                "Precondition Failed with the current ETag, and changes nothing. Figures kept in the background "
                "(counts) and signed URLs do not count.")
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False,
    description='The ETag you last saw (`"3.9c1e..."`), or the bare version (`"3"`, the `version` field). When the '
                'resource has moved to another version the request answers 412 Precondition Failed with the current '
                'ETag and version, and changes nothing.')
# `"3"`, `3` or a full ETag `"3.<digest>"`: the version is what a write is conditional on.
_IF_MATCH = re.compile(r'"?([0-9]{1,18})(?:\.[0-9a-f]{1,64})?"?')
_NEVER = -1  # a weak tag: If-Match compares strongly (RFC 9110 13.1.1), so it names no version


def _if_match_tags(request):
    """The entity tags of If-Match ("a", "b" lists too), or None without the header or with `*` (any current
    representation: the resource exists, which the view has established)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if not tags:
        raise ValidationError({"If-Match": ['Give the ETag you last saw, e.g. If-Match: "3", or a list of them.']})
    return tags


def if_match_version(request, current=None):
    """The version If-Match makes the write conditional on, or None without one. A list names `current` when
    one of its tags does, else its first; a weak tag names none (the write answers 412)."""
    tags = _if_match_tags(request)
    if tags is None:
        return None
    versions = []
    for tag in tags:
        match = None if tag.startswith("W/") else _IF_MATCH.fullmatch(tag)
        if match is None and not tag.startswith("W/"):
            raise ValidationError({"If-Match": ['Give the ETag or the version you last saw, e.g. If-Match: "3".']})
        versions.append(_NEVER if match is None else int(match.group(1)))
    return current if current in versions else versions[0]


def if_none_match_names(request, etag):
    """Whether If-None-Match lists `etag` (weak comparison) or is `*` (RFC 9110 13.1.2): the client's copy is
    current. For answers built before the ETag middleware could see them (files)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    listed = {tag.removeprefix("W/") for tag in parse_etags(header)}
    return "*" in listed or etag.removeprefix("W/") in listed


def _digest(value, length):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
                          ).hexdigest()[:length]


def edit_etag(edit_state, data):
    """`"e<digest of what a write may change>.<digest of the representation>"`, the ETag of a resource without
    versions. If-None-Match compares it whole, so a 304 never hides a change; If-Match compares the first part
    (if_match_edit), so counts and signed URLs that move in the background do not fail an edit."""
    return f'"e{_digest(edit_state, 16)}.{_digest(data, 16)}"'


def if_match_edit(request, edit_state, current_etag):
    """With If-Match, a write proceeds only while one of the strong tags it lists names `edit_state` (its fields
    as stored now); else 412 with `current_etag()`, nothing changed."""
    tags = _if_match_tags(request)
    if tags is None:
        return
    wanted = f"e{_digest(edit_state, 16)}"
    if not any(tag.startswith('"') and tag.strip('"').split(".")[0] == wanted for tag in tags):
        raise PreconditionFailed("It was edited since you read it (your If-Match names another state): read it again.",
                                 version=None, etag=current_etag())


def representation_etag(version, data):
    """`"<version>.<digest>"`. If-Match compares the version: an edit fails only when someone else edited the
    resource, not when a derived figure (vote counts) moved. If-None-Match compares the whole ETag, and the digest
    of the representation changes with anything shown, so a 304 never hides a change."""
    body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":")).encode()
    return f'"{version}.{hashlib.sha256(body).hexdigest()[:16]}"'


def etagged(data, etag, **kwargs):
    """A Response carrying `etag` (GET requests: ConditionalGetMiddleware answers 304 when If-None-Match has it)."""
    response = Response(data, **kwargs)
    response["ETag"] = etag
    return response


@contextmanager
def if_match_precondition(request, current_etag):
    """Inside, a version conflict answers 412 with `current_etag()` when If-Match made the request conditional;
    a stale `version` field in the body is a conflict of the body with the state and stays a 409."""
    try:
        yield
    except VersionConflict as conflict:
        if request.headers.get("If-Match") is None:
            raise
        tags = _if_match_tags(request) or []
        # A weak tag names no version: "changed since version -1" told the client nothing it could act on.
        message = (f"If-Match compares strongly (RFC 9110, 13.1.1): a weak tag (W/...) never matches. Send the ETag "
                   f"as the last answer gave it; it is now version {conflict.current_version}."
                   if tags and all(tag.startswith("W/") for tag in tags) else conflict.message)
        raise PreconditionFailed(message, version=conflict.current_version, etag=current_etag()) from None


class ConditionalWritesMixin:
    """For a resource without versions: its GET answers an edit_etag, and a PATCH or DELETE with If-Match proceeds
    only while the fields a write may change (`edit_fields`) are as that GET showed them. A PATCH checks and writes
    under the row's lock (`with self.conditional_write(obj):`), a DELETE checks (`require_current`)."""

    edit_fields: tuple[str, ...] = ()

    def represent(self, instance):
        return self.get_serializer(instance).data

    def edit_state(self, instance):
        return {name: getattr(instance, name) for name in self.edit_fields}

    def current_etag(self, instance):
        return edit_etag(self.edit_state(instance), self.represent(instance))

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        data = self.represent(instance)
        return etagged(data, edit_etag(self.edit_state(instance), data))

    def require_current(self, instance):
        if_match_edit(self.request, self.edit_state(instance), lambda: self.current_etag(instance))

    def finalize_response(self, request, response, *args, **kwargs):
        """A conditional PATCH answers the ETag of what it wrote (read under the row's lock, so no other write lies
        in between), and the next conditional write needs no GET first."""
        written = getattr(self, "_written_state", None)
        if written is not None and response.status_code == 200 and not response.has_header("ETag"):
            response["ETag"] = edit_etag(written, response.data)
        return super().finalize_response(request, response, *args, **kwargs)

    @contextmanager
    def conditional_write(self, instance):
        if _if_match_tags(self.request) is None:
            yield
            return
        with row_locked(instance, self.edit_fields) as stored:  # two writers holding one ETag: the second waits
            if_match_edit(self.request, stored, lambda: self.current_etag(instance))
            yield
            self._written_state = row_values(instance, self.edit_fields)
