"""Image ingestion: staging the request's files, then the import job that validates and stores them.

Every file is validated with Pillow before anything is written for it, so a refused file leaves no
row and no blob. Blobs are content-addressed, rows are unique per (dataset, sha256), so running the
same import again, or resuming one whose worker died, adds nothing twice.
"""

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from imagestudio import pipeline
from imagestudio.common.errors import ValidationFailed
from imagestudio.jobs.services import job_enqueue, job_progress, queue_check

from .imaging import InvalidImage, ValidatedImage, validate_image
from .manifest import ManifestError, ManifestRow, ground_truth_classes, parse_manifest
from .models import LabelClass, Sample, Split
from .services import dataset_add_counts, search_text
from .signals import ground_truth_imported
from .sources import ArchiveSource, DirectorySource, SourceError, find_manifest, join_relative

logger = logging.getLogger(__name__)

IMPORT_TASK = "workers.tasks.imports.run_import"
BATCH_SIZE = 32
MAX_REPORTED = 1000  # per-file entries kept in a job result; the counts stay exact


# ---------------------------------------------------------------- starting an import (web side)


def _stage(prefix, name, content):
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in os.path.basename(name))[:100] or "file"
    return default_storage.save(f"{prefix}/{uuid.uuid4().hex[:8]}_{safe}", content)


def _check_manifest_name(manifest):
    if manifest is not None and not manifest.name.lower().endswith((".csv", ".jsonl", ".ndjson")):
        raise ValidationFailed("The manifest must be a .csv or .jsonl file.", field="manifest")


def import_start_upload(*, dataset, user, files, split, metadata=None, manifest=None):
    """Stage uploaded image files (and an optional manifest) and queue their import."""
    queue_check()
    if not files:
        raise ValidationFailed("Send at least one file in 'files'.", field="files")
    if len(files) > settings.MAX_UPLOAD_FILES:
        raise ValidationFailed(f"At most {settings.MAX_UPLOAD_FILES} files per upload.", field="files")
    metadata = metadata or {}
    unknown = set(metadata) - {f.name for f in files}
    if unknown:
        raise ValidationFailed(
            f"'metadata' names files that are not uploaded: {', '.join(sorted(unknown)[:5])}", field="metadata"
        )
    _check_manifest_name(manifest)
    prefix = f"staging/{uuid.uuid4().hex}"
    staged = [{"key": _stage(prefix, f.name, f), "name": f.name} for f in files]
    params = {"source": "upload", "staging": prefix, "files": staged, "split": split, "metadata": metadata}
    if manifest is not None:
        params["manifest"] = {"key": _stage(prefix, manifest.name, manifest), "name": manifest.name}
    return _enqueue(dataset, user, params)


def import_start_archive(*, dataset, user, archive, split, manifest=None):
    """Stage an uploaded zip or tar archive (and an optional manifest beside it) and queue its import."""
    queue_check()
    if archive.size > settings.MAX_ARCHIVE_BYTES:
        raise ValidationFailed(
            f"The archive has {archive.size} bytes, more than the limit of {settings.MAX_ARCHIVE_BYTES}.",
            field="archive",
        )
    _check_manifest_name(manifest)
    prefix = f"staging/{uuid.uuid4().hex}"
    params = {
        "source": "archive",
        "staging": prefix,
        "archive": {"key": _stage(prefix, archive.name, archive), "name": archive.name},
        "split": split,
    }
    if manifest is not None:
        params["manifest"] = {"key": _stage(prefix, manifest.name, manifest), "name": manifest.name}
    return _enqueue(dataset, user, params)


def resolve_server_path(relative):
    """A path below IMPORT_ROOT, or ValidationFailed."""
    if not settings.IMPORT_ROOT:
        raise ValidationFailed("Server-side imports are disabled: the operator has not set IMPORT_ROOT.",
                               code="import_root_unset", field="path")
    root = Path(settings.IMPORT_ROOT).resolve()
    candidate = (root / relative.lstrip("/")).resolve()
    if not candidate.is_relative_to(root):
        raise ValidationFailed("The path leaves the import root.", field="path")
    if not candidate.exists():
        raise ValidationFailed(f"Nothing exists at {relative!r} below the import root.", field="path")
    if candidate.is_file() and not candidate.name.lower().endswith((".csv", ".jsonl", ".ndjson")):
        raise ValidationFailed("A server path must be a directory or a .csv / .jsonl manifest.", field="path")
    return candidate


def import_start_server(*, dataset, user, path, split):
    """Queue the import of a directory or manifest below the operator's IMPORT_ROOT."""
    resolve_server_path(path)
    return _enqueue(dataset, user, {"source": "server", "path": path, "split": split})


def _enqueue(dataset, user, params):
    job, _ = job_enqueue(kind="import", task_name=IMPORT_TASK, dataset=dataset, creator=user, params=params)
    return job


# ---------------------------------------------------------------- running an import (worker side)


@dataclass
class Item:
    """One file to import: where its bytes come from and what the manifest says about it."""

    name: str
    read: object  # () -> bytes, may raise SourceError
    split: str
    external_id: str
    metadata: dict
    ground_truth: dict


class ImportReport:
    def __init__(self):
        self.created = 0
        self.duplicates = 0
        self.errors = 0
        self.annotations = 0
        self.stripped = 0
        self.duplicate_files = []
        self.error_files = []
        self.stripped_files = []

    def error(self, name, reason):
        self.errors += 1
        if len(self.error_files) < MAX_REPORTED:
            self.error_files.append({"file": name, "reason": reason})

    def duplicate(self, name, sample_id, reason):
        self.duplicates += 1
        if len(self.duplicate_files) < MAX_REPORTED:
            self.duplicate_files.append({"file": name, "sample_id": sample_id, "reason": reason})

    def strip(self, name, sample_id, reason):
        """A file stored without the data that followed its image (see imaging.image_end)."""
        self.stripped += 1
        if len(self.stripped_files) < MAX_REPORTED:
            self.stripped_files.append({"file": name, "sample_id": sample_id, "reason": reason})

    def as_dict(self, total):
        return {
            "total": total,
            "created": self.created,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "annotations": self.annotations,
            "stripped": self.stripped,
            "duplicate_files": self.duplicate_files,
            "error_files": self.error_files,
            "stripped_files": self.stripped_files,
            "truncated": (self.duplicates > len(self.duplicate_files) or self.errors > len(self.error_files)
                          or self.stripped > len(self.stripped_files)),
        }


class _Seen:
    def __init__(self):
        self.shas = {}
        self.external_ids = set()

    def add(self, sha256, external_id):
        self.shas[sha256] = external_id
        self.external_ids.add(external_id)

    def forget(self, sha256, external_id):
        self.shas.pop(sha256, None)
        self.external_ids.discard(external_id)


@contextlib.contextmanager
def _local_file(key):
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


def _read_staged(key, limit):
    def read():
        with default_storage.open(key, "rb") as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise SourceError(f"the file has more than the limit of {limit} bytes")
        return data

    return read


def _manifest_rows(data, name, class_names):
    try:
        rows = parse_manifest(data, file_name=name, valid_splits=Split.values, max_rows=settings.MAX_ARCHIVE_MEMBERS)
    except ManifestError as exc:
        raise ValidationFailed(f"manifest {name}: {exc}") from None
    unknown = ground_truth_classes(rows) - set(class_names)
    if unknown:
        raise ValidationFailed(
            f"manifest {name} gives ground truth for classes this dataset does not have: "
            f"{', '.join(sorted(unknown))}. Create them first (classes: {', '.join(sorted(class_names)) or 'none'})."
        )
    return rows


def _item_from(row: ManifestRow | None, name, read, default_split, extra_metadata=None):
    metadata = dict(extra_metadata or {})
    if row is None:
        return Item(name, read, default_split, name, metadata, {})
    metadata.update(row.metadata)
    return Item(name, read, row.split or default_split, row.external_id or row.file, metadata, row.ground_truth)


def _items_for_listing(entries, read_entry, manifest_name, manifest_data, default_split, class_names, report):
    """Items of an archive or directory: the manifest's rows when there is one, else every file."""
    if manifest_name is None:
        return [_item_from(None, e.name, lambda n=e.name: read_entry(n), default_split) for e in entries]
    rows = _manifest_rows(manifest_data, manifest_name, class_names)
    manifest_dir = os.path.dirname(manifest_name) if manifest_name in {e.name for e in entries} else ""
    present = {e.name for e in entries}
    items = []
    for row in rows:
        if row.error:
            report.error(row.file or f"line {row.line}", f"manifest line {row.line}: {row.error}")
            continue
        try:
            name = join_relative(manifest_dir, row.file)
        except SourceError as exc:
            report.error(row.file, f"manifest line {row.line}: {exc}")
            continue
        if name not in present:
            report.error(row.file, f"manifest line {row.line}: no such file")
            continue
        items.append(_item_from(row, name, lambda n=name: read_entry(n), default_split))
    return items


def _plan(job, dataset, report):
    """The list of items to import and the source to close afterwards."""
    params = job.params
    default_split = params.get("split") or Split.TRAIN
    class_names = list(dataset.classes.values_list("name", flat=True))
    source = params["source"]
    if source == "upload":
        rows = {}
        if params.get("manifest"):
            manifest = params["manifest"]
            with default_storage.open(manifest["key"], "rb") as stream:
                data = stream.read(settings.MAX_MANIFEST_BYTES + 1)
            for row in _manifest_rows(data, manifest["name"], class_names):
                if row.error:
                    report.error(row.file or f"line {row.line}", f"manifest line {row.line}: {row.error}")
                else:
                    rows[row.file] = row
        items = []
        for staged in params["files"]:
            read = _read_staged(staged["key"], settings.MAX_IMAGE_BYTES)
            extra = params.get("metadata", {}).get(staged["name"])
            items.append(_item_from(rows.get(staged["name"]), staged["name"], read, default_split, extra))
        return items, None
    limits = {"max_member_bytes": settings.MAX_IMAGE_BYTES, "max_members": settings.MAX_ARCHIVE_MEMBERS}
    if source == "archive":
        stack = contextlib.ExitStack()
        local = stack.enter_context(_local_file(params["archive"]["key"]))
        try:
            archive = ArchiveSource(local, max_total_bytes=settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES, **limits)
        except SourceError as exc:
            stack.close()
            raise ValidationFailed(str(exc)) from None
        stack.callback(archive.close)
        try:
            entries = archive.entries()
        except SourceError as exc:
            stack.close()
            raise ValidationFailed(str(exc)) from None
        for name, reason in archive.refused:
            report.error(name, reason)
        names = {e.name for e in entries}
        if params.get("manifest"):
            manifest_name = params["manifest"]["name"]
            with default_storage.open(params["manifest"]["key"], "rb") as stream:
                manifest_data = stream.read(settings.MAX_MANIFEST_BYTES + 1)
        else:
            manifest_name = find_manifest(names)
            manifest_data = archive.read(manifest_name) if manifest_name else None
        if manifest_name in names:
            entries = [e for e in entries if e.name != manifest_name]
        items = _items_for_listing(entries, archive.read, manifest_name, manifest_data, default_split,
                                   class_names, report)
        return items, stack
    if source == "server":
        target = resolve_server_path(params["path"])
        base = target if target.is_dir() else target.parent
        directory = DirectorySource(settings.IMPORT_ROOT, base, **limits)
        try:
            entries = directory.entries()
        except SourceError as exc:
            raise ValidationFailed(str(exc)) from None
        for name, reason in directory.refused:
            report.error(name, reason)
        names = {e.name for e in entries}
        manifest_name = target.name if target.is_file() else find_manifest(names)
        manifest_data = directory.read(manifest_name) if manifest_name else None
        entries = [e for e in entries if e.name != manifest_name]
        items = _items_for_listing(entries, directory.read, manifest_name, manifest_data, default_split,
                                   class_names, report)
        return items, None
    raise ValidationFailed(f"unknown import source {source!r}")


def _validate(item):
    """Read and validate one item; returns (item, ValidatedImage, the bytes to store) or (item, reason, None)."""
    try:
        data = item.read()
        image = validate_image(
            data,
            max_bytes=settings.MAX_IMAGE_BYTES,
            max_pixels=settings.MAX_IMAGE_PIXELS,
            thumbnail_size=settings.THUMBNAIL_SIZE,
        )
    except (SourceError, InvalidImage) as exc:
        return item, str(exc), None
    return item, image, data[:image.bytes] if image.trailing_bytes else data


def _store_blob(key, data):
    """Write a content-addressed blob; returns (key, newly_written)."""
    if default_storage.exists(key):
        return key, False
    return default_storage.save(key, ContentFile(data)), True


def _write_batch(job, dataset, batch, classes_by_name, report, seen):
    """Store blobs and rows of validated items in one transaction; a failed batch removes its new blobs.

    `seen` remembers what this run stored, to catch duplicates inside one import.
    """
    fresh = []
    existing = dict(
        Sample.objects.filter(dataset=dataset, sha256__in=[v.sha256 for _, v, _ in batch])
        .values_list("sha256", "id")
    )
    existing_external = dict(
        Sample.objects.filter(dataset=dataset, external_id__in=[i.external_id for i, _, _ in batch])
        .values_list("external_id", "sha256")
    )
    already_mine = set(
        Sample.objects.filter(dataset=dataset, import_job=job, sha256__in=list(existing)).values_list("sha256", flat=True)
    )
    for item, image, data in batch:
        if image.sha256 in already_mine:
            report.created += 1  # stored by an earlier attempt of this same job
            continue
        if image.sha256 in existing:
            report.duplicate(item.name, existing[image.sha256], "the same image is already in the dataset")
            continue
        if image.sha256 in seen.shas:
            report.duplicate(item.name, None, f"the same image as {seen.shas[image.sha256]} in this import")
            continue
        if item.external_id in existing_external or item.external_id in seen.external_ids:
            report.error(item.name, f"external_id {item.external_id!r} is already used by another image")
            continue
        seen.add(image.sha256, item.external_id)
        fresh.append((item, image, data))
    if not fresh:
        return
    written = []
    try:
        samples = []
        for item, image, data in fresh:
            folder = f"datasets/{dataset.id}"
            original, new_original = _store_blob(
                f"{folder}/originals/{image.sha256[:2]}/{image.sha256}{image.extension}", data
            )
            thumb, new_thumb = _store_blob(f"{folder}/thumbnails/{image.sha256[:2]}/{image.sha256}.jpg",
                                           image.thumbnail_jpeg)
            written += [key for key, new in ((original, new_original), (thumb, new_thumb)) if new]
            samples.append(_sample_row(job, dataset, item, image, original, thumb))
        with transaction.atomic():
            created = Sample.objects.bulk_create(samples)
            if any(s.pk is None for s in created):  # backends without RETURNING
                by_sha = dict(Sample.objects.filter(dataset=dataset, sha256__in=[s.sha256 for s in created])
                              .values_list("sha256", "id"))
                for s in created:
                    s.pk = by_sha[s.sha256]
            ground_truth = [
                (sample.pk, sample.split, classes_by_name[name], value)
                for sample, (item, _, _) in zip(created, fresh, strict=True)
                for name, value in item.ground_truth.items()
            ]
            report.annotations += sum(stored for _, stored in ground_truth_imported.send(
                sender=Sample, dataset=dataset, user=job.creator, rows=ground_truth))
            dataset_add_counts(dataset_id=dataset.id, counts=_count_splits(created))
    except IntegrityError:
        # A concurrent import stored one of these images first: undo our blobs, retry one by one.
        for key in written:
            default_storage.delete(key)
        for item, image, _ in fresh:
            seen.forget(image.sha256, item.external_id)
        if len(fresh) == 1:
            item = fresh[0][0]
            report.error(item.name, "stored concurrently by another import; run the import again to see it as a duplicate")
            return
        for entry in fresh:
            _write_batch(job, dataset, [entry], classes_by_name, report, seen)
        return
    except Exception:
        for key in written:
            default_storage.delete(key)
        raise
    report.created += len(created)
    for sample, (item, image, _) in zip(created, fresh, strict=True):
        if image.trailing_bytes:
            report.strip(item.name, sample.pk, image.trailing_note)


def _sample_row(job, dataset, item, image: ValidatedImage, original, thumb):
    return Sample(
        dataset=dataset,
        split=item.split,
        external_id=item.external_id[:512],
        file_name=os.path.basename(item.name)[:512],
        original=original,
        thumbnail=thumb,
        width=image.width,
        height=image.height,
        format=image.format,
        bytes=image.bytes,
        sha256=image.sha256,
        metadata=item.metadata,
        search_text=search_text(item.external_id, item.name, item.metadata),
        import_job=job,
    )


def _count_splits(samples):
    counts = {}
    for sample in samples:
        counts[sample.split] = counts.get(sample.split, 0) + 1
    return counts


def import_run(job):
    """The import job's body: returns the result dict (counts and per-file reasons)."""
    dataset = job.dataset
    report = ImportReport()
    started = time.monotonic()
    try:
        items, closer = _plan(job, dataset, report)
    except ValidationFailed:
        _cleanup_staging(job)
        raise
    total = len(items)
    classes_by_name = {c.name: c for c in LabelClass.objects.filter(dataset=dataset)}
    seen = _Seen()
    done = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, settings.INGEST_THREADS)) as pool:
            for start in range(0, total, BATCH_SIZE):
                chunk = items[start:start + BATCH_SIZE]
                valid = []
                for item, outcome, data in pool.map(_validate, chunk):
                    if data is None:
                        report.error(item.name, outcome)
                    else:
                        valid.append((item, outcome, data))
                if valid:
                    _write_batch(job, dataset, valid, classes_by_name, report, seen)
                done += len(chunk)
                elapsed = max(time.monotonic() - started, 1e-6)
                job_progress(job_id=job.id, progress=done / max(total, 1),
                             message=f"{done}/{total} files, {done / elapsed:.1f} files/s")
    finally:
        if closer is not None:
            closer.close()
        _cleanup_staging(job)
    result = report.as_dict(total)
    result["seconds"] = round(time.monotonic() - started, 3)
    if report.created:
        result.update(pipeline.after_import(dataset=dataset, user=job.creator))
    return result


def _cleanup_staging(job):
    prefix = job.params.get("staging")
    if not prefix:
        return
    try:
        directories, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotImplementedError):
        return
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    with contextlib.suppress(OSError, NotImplementedError):
        os.rmdir(default_storage.path(prefix))
