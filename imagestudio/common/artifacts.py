"""Artifacts (training sets, model coefficients) as npz files in the media storage: written atomically
(a temporary file renamed into place), identified by their sha256, read back only when the hash matches,
and never with pickle."""

import hashlib
import io
import os
import tempfile

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .errors import Conflict


def artifact_write(key, arrays):
    """Store arrays under `key`; returns (stored key, sha256)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        path = default_storage.path(key)
    except NotImplementedError:  # object storage: a PUT is atomic already
        return default_storage.save(key, ContentFile(data)), digest
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return key, digest


def artifact_read(key, sha256):
    """The arrays stored under `key`, after checking their hash (a mismatch is refused, never loaded)."""
    with default_storage.open(key, "rb") as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Conflict(f"The artifact {key} does not match its recorded hash; it was changed or damaged.",
                       code="artifact_tampered")
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def artifact_sha256(key):
    """The sha256 of what is stored under `key` now, or None when nothing is."""
    digest = hashlib.sha256()
    try:
        with default_storage.open(key, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()
