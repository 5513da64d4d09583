"""API token secrets: how one is made, and the two non-secret things stored about it.

A key is `ist_` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 digest is stored, and its
first KEY_PREFIX_LENGTH characters, which find the row (and show the token in a list) without revealing the secret.
A fast hash is enough: the key is random, so there is nothing to guess from the digest. Keys of the tokens
imported from DRF's authtoken table (40 hex characters) are found and checked the same way.
"""

import hashlib
import secrets

KEY_MARKER = "ist_"  # makes a leaked key recognisable to secret scanners and to people
KEY_PREFIX_LENGTH = 12  # the marker and 8 random characters (48 bits): rarely shared by two live tokens


def key_new() -> str:
    return KEY_MARKER + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LENGTH]
