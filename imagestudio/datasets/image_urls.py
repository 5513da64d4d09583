"""Image URLs an `<img>` can load, which cannot send a token.

Where the API streams the files (a local file system storage), a URL carries an expiry and a signature: an
HMAC-SHA256, keyed from SECRET_KEY, over (dataset, sample, size, expiry). It opens that one file of that one
sample until the expiry, and nothing else. Expiries are rounded up to a bucket (a quarter of the lifetime), so
every URL issued within a bucket is the same and the browser's cache serves the bytes again.

Where the files live in object storage (any other Django storage, e.g. S3), the storage's own URL is handed out
instead (S3 storages presign it, with their own expiry setting), and the bytes never pass through the API.
"""

import base64
import hashlib
import hmac
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import models

EXPIRY_PARAM = "exp"
SIGNATURE_PARAM = "sig"
_EXPIRY = re.compile(r"[1-9][0-9]{0,11}")  # seconds since the epoch, written one way only
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded base64url
_KEY_SALT = b"imagestudio.datasets.image_urls"


class ImageSize(models.TextChoices):
    ORIGINAL = "original"
    THUMBNAIL = "thumbnail"


REFUSALS = {
    "signature_invalid": "This image URL's signature does not match it: take the URL from a sample payload as it is.",
    "signature_expired": "This image URL has expired: take a fresh one from the sample payload.",
}


@dataclass(frozen=True)
class SignedAccess:
    """What checking a signed URL found: `refusal` (a key of REFUSALS) or the seconds it stays valid."""

    refusal: str | None = None
    seconds_left: int = 0


def url_expiry(now: float | None = None) -> int:
    """The expiry for URLs issued at `now`: at least IMAGE_URL_TTL_SECONDS ahead, rounded up to a bucket."""
    ttl = settings.IMAGE_URL_TTL_SECONDS
    bucket = max(1, ttl // 4)
    return math.ceil((int(time.time() if now is None else now) + ttl) / bucket) * bucket


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # A key of its own, so a signature here can be replayed against nothing else keyed by SECRET_KEY.
    return hashlib.sha256(_KEY_SALT + secret.encode()).digest()


def _signature(key: bytes, dataset_id: int, sample_id: int, size: str, expires: str) -> str:
    digest = hmac.digest(key, f"{dataset_id}/{sample_id}/{size}/{expires}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_query(*, dataset_id: int, sample_id: int, size: str, expires: int, key: bytes | None = None) -> str:
    """The query string (`exp=...&sig=...`) that opens `size` of the sample until `expires` (`key`: the signing
    key, when the caller holds it already)."""
    signature = _signature(key or _key(settings.SECRET_KEY), dataset_id, sample_id, size, str(expires))
    return f"{EXPIRY_PARAM}={expires}&{SIGNATURE_PARAM}={signature}"  # digits and base64url: nothing to escape


def signed_access(*, dataset_id: int | None, sample_id: int | None, size: str, expires: str, signature: str,
                  now: float | None = None) -> SignedAccess:
    """Check a URL's expiry and signature (texts as received) for `size` of the sample.

    Keys in SECRET_KEY_FALLBACKS still verify, so rotating the secret does not break pages already loaded.
    """
    if dataset_id is None or sample_id is None or not _EXPIRY.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        return SignedAccess(refusal="signature_invalid")
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    # Compared as text: two base64 spellings of one digest (the last character's spare bits) are not both valid.
    if not any(hmac.compare_digest(_signature(_key(secret), dataset_id, sample_id, size, expires), signature)
               for secret in secrets):
        return SignedAccess(refusal="signature_invalid")
    seconds_left = int(expires) - int(time.time() if now is None else now)
    if seconds_left <= 0:
        return SignedAccess(refusal="signature_expired")
    return SignedAccess(seconds_left=seconds_left)


def storage_serves_files(storage=default_storage) -> bool:
    """Whether clients fetch the files from the storage's own URLs (object storage) rather than through the API
    (a local file system, which has no URL of its own that checks anything)."""
    return not isinstance(storage, FileSystemStorage)


class ImageUrls:
    """The image URLs of the samples of one response: one expiry for all of them, one look at the storage."""

    def __init__(self, now: float | None = None):
        self.expires = url_expiry(now)
        self.key = _key(settings.SECRET_KEY)
        self.storage = default_storage if storage_serves_files() else None

    def url(self, sample, size: str, api_path: str) -> str:
        """The URL of `size` of the sample: the storage's own, or `api_path` (where the API serves it) signed."""
        if self.storage is not None:
            return self.storage.url(sample.original if size == ImageSize.ORIGINAL else sample.thumbnail)
        query = signed_query(dataset_id=sample.dataset_id, sample_id=sample.pk, size=size, expires=self.expires,
                             key=self.key)
        return f"{api_path}?{query}"
