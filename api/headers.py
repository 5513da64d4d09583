"""Conditional requests (RFC 9110) on versioned resources: ETags, If-Match and its 412."""

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

IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False,
    description='The ETag you last saw (`"3.9c1e..."`), or the bare version (`"3"`, the `version` field). When the '
                'resource has moved to another version the request answers 412 Precondition Failed with the current '
                'ETag and version, and changes nothing.')
# `"3"`, `W/"3"`, `3` or a full ETag `"3.<digest>"`: the version is what a write is conditional on.
_IF_MATCH = re.compile(r'(?:W/)?"?([0-9]{1,18})(?:\.[0-9a-f]{1,64})?"?')


def if_match_version(request):
    """The version in an If-Match header, or None without the header or with `*` (any current representation: the
    resource exists, which the view has established)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = _IF_MATCH.fullmatch(header.strip())
    if match is None:
        raise ValidationError({"If-Match": ['Give the ETag or the version you last saw, e.g. If-Match: "3".']})
    return int(match.group(1))


def if_none_match_names(request, etag):
    """Whether If-None-Match lists `etag` (weak comparison) or is `*` (RFC 9110 13.1.2): the client's copy is
    current. For answers built before the ETag middleware could see them (files)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    listed = {tag.removeprefix("W/") for tag in parse_etags(header)}
    return "*" in listed or etag.removeprefix("W/") in listed


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
        raise PreconditionFailed(conflict.message, version=conflict.current_version, etag=current_etag()) from None
