"""`Authorization: Token <key>` against the hashed API tokens of imagestudio.accounts.

The header is parsed here (any bytes a client sends end in a 401, never a 500); the token is found by the
accounts selector, which compares digests in constant time. A revoked or expired token is a 401 that says so.
"""

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from imagestudio.accounts.selectors import token_by_key
from imagestudio.accounts.services import token_touch

KEYWORD = "Token"
# Keys are URL-safe base64 (`ist_...`) or, imported from DRF's authtoken, 40 hex digits; anything else names no
# token and is refused without a query.
_KEY = re.compile(r"[A-Za-z0-9_-]{20,100}")


def key_from_header(header: str | bytes) -> str | None:
    """The key in an Authorization header value; None when the header is not a Token one (another scheme may
    apply); AuthenticationFailed when it is one but malformed."""
    if isinstance(header, bytes):
        header = header.decode(HTTP_HEADER_ENCODING)  # latin-1: every byte decodes
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD.lower():
        return None
    if len(parts) == 1:
        raise AuthenticationFailed("Invalid token header: no key after `Token`.", code="invalid_token_header")
    if len(parts) > 2:
        raise AuthenticationFailed("Invalid token header: the key contains spaces.", code="invalid_token_header")
    if not _KEY.fullmatch(parts[1]):
        raise AuthenticationFailed("Invalid token.", code="invalid_token")
    return parts[1]


class ApiTokenAuthentication(BaseAuthentication):
    """Sets request.user to the token's owner and request.auth to the ApiToken."""

    def authenticate(self, request):
        key = key_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        if key is None:
            return None
        token = token_by_key(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid token.", code="invalid_token")
        if token.revoked_at is not None:
            raise AuthenticationFailed("This token was revoked (logout, rotation or deletion): sign in again or "
                                         "use another token.", code="token_revoked")
        if token.expired():
            raise AuthenticationFailed("This token has expired: sign in again or create a new token.",
                                       code="token_expired")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.", code="user_inactive")
        token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request):
        return KEYWORD  # makes a failed authentication a 401 with `WWW-Authenticate: Token`


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "Token"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>`: a key from POST /api/auth/token/ (login) or /api/auth/tokens/ (named)."}
