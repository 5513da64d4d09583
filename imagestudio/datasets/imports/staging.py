"""Uploads an import reads before it runs, staged in default_storage (server-side paths: see grants.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files.storage import default_storage
from django.utils import timezone

from imagestudio.jobs.models import ACTIVE_STATUSES, Job

from ..sources import SourceError

if TYPE_CHECKING:
    from django.core.files import File

STAGING_ROOT = "staging"
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def staging_prefix() -> str:
    """A fresh folder for one request's staged files."""
    return f"{STAGING_ROOT}/{uuid.uuid4().hex}"


def stage(prefix: str, name: str, content: File) -> str:
    """Save an uploaded file below `prefix` under a safe name; returns its storage key."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in os.path.basename(name))[:100] or "file"
    return default_storage.save(f"{prefix}/{uuid.uuid4().hex[:8]}_{safe}", content)


def staging_remove(prefix: str | None) -> None:
    """Delete a staging folder and what it holds (nothing happens when it is already gone)."""
    if not prefix:
        return
    try:
        _, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotImplementedError):
        return
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    with contextlib.suppress(OSError, NotImplementedError):
        os.rmdir(default_storage.path(prefix))


def imports_sweep_orphans(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Remove staging folders no queued or running import uses and nothing in which changed within `older_than`
    (left by a request killed after staging, say). Returns how many folders were removed."""
    try:
        folders, _ = default_storage.listdir(STAGING_ROOT)
    except (FileNotFoundError, NotImplementedError):
        return 0
    in_use = set(Job.objects.filter(kind="import", status__in=ACTIVE_STATUSES)
                 .values_list("params__staging", flat=True))
    cutoff = timezone.now() - older_than
    removed = 0
    for folder in folders:
        prefix = f"{STAGING_ROOT}/{folder}"
        if prefix in in_use or _changed_since(prefix, cutoff):
            continue
        staging_remove(prefix)
        removed += 1
    return removed


def _changed_since(prefix, cutoff):
    _, files = default_storage.listdir(prefix)
    return any(default_storage.get_modified_time(f"{prefix}/{name}") > cutoff for name in files)


def read_staged(key: str, limit: int) -> bytes:
    with default_storage.open(key, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise SourceError(f"the file has more than the limit of {limit} bytes")
    return data


@contextlib.contextmanager
def local_file(key: str) -> Iterator[str]:
    """A local filesystem path for a staged object (a temporary copy when storage is remote)."""
    try:
        yield default_storage.path(key)
        return
    except NotImplementedError:
        pass
    with default_storage.open(key, "rb") as remote, tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as tmp:
        shutil.copyfileobj(remote, tmp)
        tmp.flush()
        yield tmp.name
