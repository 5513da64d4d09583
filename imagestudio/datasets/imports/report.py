"""The result of an import job. Every input file lands in exactly one bucket: created, created after stripping
(data appended after its image was cut off), duplicate (of sample N), refused (with the reason), skipped (an
archive or directory member its manifest does not list), or, where the import was cancelled before it reached the
file, cancelled. The job result keeps exact counts and up to MAX_REPORTED entries per list; the complete per-file
report (JSON lines) is written as it goes and stored as a file when the result cannot hold all of it."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from typing import TYPE_CHECKING

from django.core.files import File
from django.core.files.storage import default_storage

from .storable import safe_text

if TYPE_CHECKING:
    import uuid

    from imagestudio.jobs.models import Job

MAX_REPORTED = 1000  # per-file entries kept in a job result; the counts stay exact
REPORTS_ROOT = "import-reports"


class ImportAccountingError(RuntimeError):
    """The buckets do not add up to the input total: a bug, and the job fails rather than report wrong counts."""


class ImportReport:
    """Use as a context manager: the full report lives in a temporary file until `save_full`."""

    def __init__(self) -> None:
        self.counts = Counter()
        self.annotations = 0
        self.lists = {"duplicate_files": [], "error_files": [], "stripped_files": [], "skipped_files": []}
        self._full = tempfile.TemporaryFile("w+", encoding="utf-8")

    def __enter__(self) -> ImportReport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._full.close()

    def _add(self, outcome, list_name, entry):
        self.counts[outcome] += 1
        entry = {key: safe_text(value) if isinstance(value, str) else value for key, value in entry.items()}
        self._full.write(json.dumps({"outcome": outcome, **entry}) + "\n")
        if list_name and len(self.lists[list_name]) < MAX_REPORTED:
            self.lists[list_name].append(entry)

    def refuse(self, name: str, reason: str, conflict: str = "") -> None:
        self._add("refused", "error_files", {"file": name, "reason": reason, **({"conflict": conflict} if conflict else {})})

    def skip(self, name: str, reason: str) -> None:
        self._add("skipped", "skipped_files", {"file": name, "reason": reason})

    def duplicate(self, name: str, sample_id: int, reason: str, conflict: str = "", merged: tuple = ()) -> None:
        entry = {"file": name, "sample_id": sample_id, "reason": reason}
        if conflict:
            entry["conflict"] = conflict
            self.counts["conflicts"] += 1
        if merged:
            entry["merged"] = list(merged)
            self.counts["merged"] += 1
        self._add("duplicate", "duplicate_files", entry)

    def create(self, name: str, sample_id: int, stripped_note: str) -> None:
        """A new sample; `stripped_note` says what was cut off after its image (see imaging.image_end)."""
        if stripped_note:
            self._add("stripped", "stripped_files", {"file": name, "sample_id": sample_id, "reason": stripped_note})
        else:
            self._add("created", None, {"file": name, "sample_id": sample_id})

    def cancel(self, name: str) -> None:
        """A file the import did not reach: it was cancelled first."""
        self._add("cancelled", None, {"file": name})

    @property
    def reported(self) -> int:
        return sum(self.counts[outcome] for outcome in ("created", "stripped", "duplicate", "refused", "skipped"))

    def as_dict(self, total: int) -> dict:
        created, stripped = self.counts["created"], self.counts["stripped"]
        duplicates, refused, skipped = self.counts["duplicate"], self.counts["refused"], self.counts["skipped"]
        cancelled = self.counts["cancelled"]
        if created + stripped + duplicates + refused + skipped + cancelled != total:
            raise ImportAccountingError(f"{total} files in, but {created} created, {stripped} stripped, "
                                        f"{duplicates} duplicates, {refused} refused, {skipped} skipped and "
                                        f"{cancelled} not reached")
        return {
            **({"cancelled": cancelled} if cancelled else {}),
            "total": total,
            "created": created + stripped,  # every new sample; `stripped` says how many of them were cut
            "duplicates": duplicates,
            "errors": refused,
            "skipped": skipped,
            "annotations": self.annotations,
            "stripped": stripped,
            "conflicts": self.counts["conflicts"],
            "merged": self.counts["merged"],
            **self.lists,
            "truncated": (duplicates > len(self.lists["duplicate_files"]) or refused > len(self.lists["error_files"])
                          or stripped > len(self.lists["stripped_files"]) or skipped > len(self.lists["skipped_files"])),
        }

    def save_full(self, job_id: uuid.UUID | str) -> str:
        """Store the complete per-file report; returns its storage key (one per job: a resumed run replaces it)."""
        key = f"{REPORTS_ROOT}/{job_id}.jsonl"
        default_storage.delete(key)
        self._full.seek(0)
        return default_storage.save(key, File(self._full, name=f"{job_id}.jsonl"))


def report_open(*, job: Job) -> File | None:
    """The stored per-file report of an import job as an open binary stream, or None when it has none."""
    key = (job.result or {}).get("report_file") if job.kind == "import" else None
    if not key:
        return None
    try:
        return default_storage.open(key, "rb")
    except FileNotFoundError:
        return None
