"""Starting an import (web side): check the queue once, stage what the request sent and record the job, in one
transaction. Staged files never outlive a refused or failed request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from imagestudio.common.errors import ValidationFailed
from imagestudio.jobs.models import Job
from imagestudio.jobs.services import job_enqueue, queue_check

from .dedupe import DuplicatePolicy
from .grants import resolve_granted_path
from .staging import MANIFEST_SUFFIXES, stage, staging_prefix, staging_remove

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.core.files import File

    from ..models import Dataset

IMPORT_TASK = "workers.tasks.imports.run_import"


def import_start(*, dataset: Dataset, user: User, split: str, files: list | None = None, archive: File | None = None,
                 path: str | None = None, manifest: File | None = None, metadata: dict | None = None,
                 duplicates: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST) -> Job:
    """Queue the import of uploaded image files, an uploaded zip / tar archive, or a directory or manifest in an
    import source granted to the dataset or to `user` (exactly one of `files`, `archive`, `path`; see grants.py).
    `duplicates` settles a duplicate whose metadata or ground truth differ from its twin's (see
    dedupe.DuplicatePolicy)."""
    if sum(bool(source) for source in (files, archive, path)) != 1:
        raise ValidationFailed("Send exactly one of 'files', 'archive' or 'path'.")
    policy = {"duplicates": str(DuplicatePolicy(duplicates))}
    queue_check()
    if path:
        resolve_granted_path(path, dataset=dataset, user=user)
        return _enqueue(dataset, user, {"source": "server", "path": path, "split": split, **policy})
    _check_upload(files=files, archive=archive, metadata=metadata or {}, manifest=manifest)
    prefix = staging_prefix()
    try:
        with transaction.atomic():
            params = {"staging": prefix, "split": split, **policy,
                      **_stage_sources(prefix, files, archive, metadata or {})}
            if manifest is not None:
                params["manifest"] = {"key": stage(prefix, manifest.name, manifest), "name": manifest.name}
            return _enqueue(dataset, user, params)
    except BaseException:  # a refused or interrupted request leaves no staged file behind
        staging_remove(prefix)
        raise


def _check_upload(*, files, archive, metadata, manifest):
    if manifest is not None and not manifest.name.lower().endswith(MANIFEST_SUFFIXES):
        raise ValidationFailed("The manifest must be a .csv or .jsonl file.", field="manifest")
    if manifest is not None and manifest.size > settings.MAX_MANIFEST_BYTES:
        raise ValidationFailed(f"The manifest has {manifest.size} bytes, more than the limit of "
                               f"{settings.MAX_MANIFEST_BYTES} (MAX_MANIFEST_BYTES).", field="manifest")
    if archive is not None:
        if archive.size > settings.MAX_ARCHIVE_BYTES:
            raise ValidationFailed(
                f"The archive has {archive.size} bytes, more than the limit of {settings.MAX_ARCHIVE_BYTES}.",
                field="archive",
            )
        return
    if len(files) > settings.MAX_UPLOAD_FILES:
        raise ValidationFailed(f"At most {settings.MAX_UPLOAD_FILES} files per upload.", field="files")
    unknown = set(metadata) - {f.name for f in files}
    if unknown:
        raise ValidationFailed(
            f"'metadata' names files that are not uploaded: {', '.join(sorted(unknown)[:5])}", field="metadata"
        )


def _stage_sources(prefix, files, archive, metadata):
    if archive is not None:
        return {"source": "archive", "archive": {"key": stage(prefix, archive.name, archive), "name": archive.name}}
    staged = [{"key": stage(prefix, f.name, f), "name": f.name} for f in files]
    return {"source": "upload", "files": staged, "metadata": metadata}


def _enqueue(dataset, user, params):
    # queue_check ran at the start, before any staging: one broker round trip per request.
    job, _ = job_enqueue(kind="import", task_name=IMPORT_TASK, dataset=dataset, creator=user, params=params,
                         check_queue=False)
    return job
