"""What an import job reads: one protocol for uploaded files, archives and server directories (a listing of
entries, each read on demand, plus the entries refused while listing), and the items the manifest makes of them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.core.files.storage import default_storage

from imagestudio.common.errors import ValidationFailed

from ..manifest import ManifestError, ManifestRow, ground_truth_resolve, parse_manifest
from ..models import Split
from ..sources import ArchiveSource, DirectorySource, Entry, SourceError, find_manifest, join_relative, read_limited
from .grants import NOT_GRANTED, resolve_granted_path
from .staging import local_file, read_staged
from .storable import unstorable_reason

if TYPE_CHECKING:
    from imagestudio.jobs.models import Job


class Listing(Protocol):
    """What sources.ArchiveSource and sources.DirectorySource offer, and StagedFiles for uploads."""

    refused: list[tuple[str, str]]

    def entries(self) -> list[Entry]: ...

    def read(self, name: str, max_bytes: int | None = None) -> bytes: ...

    def close(self) -> None: ...


class StagedFiles:
    """Uploaded files staged in default_storage, listed in upload order."""

    def __init__(self, staged: list[dict], *, max_member_bytes: int) -> None:
        self.max_member_bytes = max_member_bytes
        self.refused = []
        self._keys = {}
        for entry in staged:
            if entry["name"] in self._keys:
                self.refused.append((entry["name"], "another uploaded file has the same name"))
            else:
                self._keys[entry["name"]] = entry["key"]

    def entries(self) -> list[Entry]:
        return [Entry(name) for name in self._keys]

    def read(self, name: str) -> bytes:
        return read_staged(self._keys[name], self.max_member_bytes)

    def close(self) -> None:
        pass


@dataclass
class Item:
    """One file to import: where its bytes come from and what the manifest says about it."""

    name: str
    read: Callable[[], bytes]  # may raise SourceError
    split: str
    external_id: str
    metadata: dict
    ground_truth: dict


@dataclass
class Manifest:
    name: str
    data: bytes
    # Inside an archive or directory the manifest's rows are what to import; beside uploads it describes them.
    selects: bool


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) before any file is read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): members a manifest leaves out


@contextlib.contextmanager
def open_plan(job: Job, class_names: list[str]) -> Iterator[Plan]:
    """The items of an import job and the inputs refused while listing them; the source closes on exit."""
    params = job.params
    with contextlib.ExitStack() as stack:
        try:
            listing, manifest = _OPENERS[params["source"]](job, stack)
            entries = listing.entries()
            if manifest is None and params["source"] != "upload":
                manifest = _manifest_in(listing, entries)
        except SourceError as exc:
            raise ValidationFailed(str(exc)) from None
        plan = Plan(refused=list(listing.refused))
        default_split = params.get("split") or Split.TRAIN
        extra_metadata = params.get("metadata") or {}
        if manifest is None:
            plan.items = [_item(None, e.name, listing, default_split, extra_metadata.get(e.name)) for e in entries]
        else:
            _items_with_manifest(plan, listing, entries, manifest, default_split, class_names, extra_metadata)
        _refuse_unstorable(plan)
        yield plan


def _refuse_unstorable(plan):
    """Items whose row the database would reject are refused here, alone, before any batch is written."""
    storable = []
    for item in plan.items:
        reason = unstorable_reason(name=item.name, external_id=item.external_id, metadata=item.metadata,
                                   ground_truth=item.ground_truth)
        if reason:
            plan.refused.append((item.name, reason))
        else:
            storable.append(item)
    plan.items = storable


def _limits():
    return {"max_member_bytes": settings.MAX_IMAGE_BYTES, "max_members": settings.MAX_ARCHIVE_MEMBERS}


def _manifest_read(name, read):
    """The manifest's bytes (`read(limit)`), or SourceError naming it (and MAX_MANIFEST_BYTES, when that is why)."""
    try:
        return read(settings.MAX_MANIFEST_BYTES)
    except SourceError as exc:
        setting = " (MAX_MANIFEST_BYTES)" if f"limit of {settings.MAX_MANIFEST_BYTES} bytes" in str(exc) else ""
        raise SourceError(f"manifest {name}: {exc}{setting}") from None


def _staged_manifest(params):
    if not params.get("manifest"):
        return None
    name = params["manifest"]["name"]
    with default_storage.open(params["manifest"]["key"], "rb") as stream:
        data = _manifest_read(name, lambda limit: read_limited(stream, limit, "the file"))
    return Manifest(name, data, selects=params["source"] != "upload")


def _open_upload(job, stack):
    params = job.params
    return StagedFiles(params["files"], max_member_bytes=settings.MAX_IMAGE_BYTES), _staged_manifest(params)


def _open_archive(job, stack):
    params = job.params
    local = stack.enter_context(local_file(params["archive"]["key"]))
    archive = ArchiveSource(local, max_total_bytes=settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES, **_limits())
    stack.callback(archive.close)  # before the manifest is read, which may refuse it
    return archive, _staged_manifest(params)


def _open_directory(job, stack):
    # Checked again as the job starts: a grant revoked since the request no longer applies.
    granted = resolve_granted_path(job.params["path"], dataset=job.dataset, user=job.creator)
    target = granted.target
    directory = DirectorySource(granted.source, target if target.is_dir() else target.parent, **_limits())
    if directory.root != granted.source:  # swapped for a link since it was checked
        raise SourceError(NOT_GRANTED)
    manifest = None
    if target.is_file():
        data = _manifest_read(target.name, lambda limit: directory.read(target.name, max_bytes=limit))
        manifest = Manifest(target.name, data, selects=True)
    return directory, manifest


_OPENERS = {"upload": _open_upload, "archive": _open_archive, "server": _open_directory}


def _manifest_in(listing, entries):
    name = find_manifest({e.name for e in entries})
    if name is None:
        return None
    return Manifest(name, _manifest_read(name, lambda limit: listing.read(name, max_bytes=limit)), selects=True)


def _manifest_rows(manifest, class_names):
    try:
        rows = parse_manifest(manifest.data, file_name=manifest.name, valid_splits=Split.values,
                              max_rows=settings.MAX_ARCHIVE_MEMBERS)
    except ManifestError as exc:
        raise ValidationFailed(f"manifest {manifest.name}: {exc}") from None
    ground_truth_resolve(rows, class_names)
    return rows


def _item(row: ManifestRow | None, name, listing, default_split, extra_metadata=None):
    metadata = dict(extra_metadata or {})
    read = lambda: listing.read(name)  # noqa: E731  (bound per item, read later in a pool thread)
    if row is None:
        return Item(name, read, default_split, name, metadata, {})
    metadata.update(row.metadata)
    return Item(name, read, row.split or default_split, row.external_id or row.file, metadata, row.ground_truth)


def _items_with_manifest(plan, listing, entries, manifest, default_split, class_names, extra_metadata):
    rows = _manifest_rows(manifest, class_names)
    if not manifest.selects:
        _describe_uploads(plan, listing, entries, rows, default_split, extra_metadata)
        return
    present = {e.name for e in entries} - {manifest.name}
    manifest_dir = os.path.dirname(manifest.name) if manifest.name in {e.name for e in entries} else ""
    # A row naming only a member the listing refused (an unsafe name, a link) is that member's refusal: counted once.
    listing_refused = {name for name, _ in plan.refused}

    def refused_member_only(row):
        name = _listed_name(manifest_dir, row.file)
        return name not in present and (name in listing_refused or row.file in listing_refused)

    rows = [row for row in rows if not refused_member_only(row)]
    for row in rows:
        if row.error:
            plan.refused.append((row.file or f"line {row.line}", f"manifest line {row.line}: {row.error}"))
    valid = [row for row in rows if not row.error]
    for row in valid:
        try:
            name = join_relative(manifest_dir, row.file)
        except SourceError as exc:
            plan.refused.append((row.file, f"manifest line {row.line}: {exc}"))
            continue
        if name not in present:
            plan.refused.append((row.file, f"manifest line {row.line}: no such file"))
            continue
        plan.items.append(_item(row, name, listing, default_split))
    listed = {_listed_name(manifest_dir, row.file) for row in rows}
    plan.skipped = [(name, f"not listed in the manifest {manifest.name}") for name in sorted(present - listed)]


def _listed_name(manifest_dir, file_name):
    """The member a manifest row names (a bad row too: its file is refused with the row), or None."""
    try:
        return join_relative(manifest_dir, file_name) if file_name else None
    except SourceError:
        return None


def _describe_uploads(plan, listing, entries, rows, default_split, extra_metadata):
    """Beside uploads the manifest describes the files sent: a file with a bad row is refused once, with the first
    bad row's reason, and not imported; rows naming no uploaded file are ignored."""
    uploaded = {e.name for e in entries}
    bad = {}
    for row in rows:
        if row.error and row.file in uploaded:
            bad.setdefault(row.file, f"manifest line {row.line}: {row.error}")
    plan.refused += list(bad.items())
    by_file = {row.file: row for row in rows if not row.error}
    plan.items = [_item(by_file.get(e.name), e.name, listing, default_split, extra_metadata.get(e.name))
                  for e in entries if e.name not in bad]
