"""Import manifests (CSV or JSONL): one row per file. Pure parsing, no Django.

Columns: `file` (required), `split`, `external_id`, `gt:<class name>` (PRESENT / ABSENT / ABSTAIN or
empty; class names compare as names.class_name_key does), and any other column, which becomes metadata. CSV cells
that read as numbers become numbers. A JSONL row may also nest `metadata` (an object) and `ground_truth` (an
object class -> value).
"""

import csv
import io
import json
import math
from dataclasses import dataclass, field

from .names import class_name_key

GT_PREFIX = "gt:"
RESERVED = {"file", "split", "external_id", "metadata", "ground_truth"}
MAX_FIELD_NAME = 100
MAX_TEXT_VALUE = 10_000
# A sample's metadata as a whole: every list, filter, catalogue and export reads it, so one sample must not cost
# the reads of thousands.
MAX_METADATA_FIELDS = 256
MAX_METADATA_CHARS = 200_000


def metadata_size_problem(metadata: dict) -> str | None:
    """Why a metadata object is too large as a whole (fields, or characters of its JSON text), or None."""
    if len(metadata) > MAX_METADATA_FIELDS:
        return f"metadata has {len(metadata):,} fields; at most {MAX_METADATA_FIELDS} are allowed"
    if len(json.dumps(metadata, ensure_ascii=False, default=str)) > MAX_METADATA_CHARS:
        return f"metadata is longer than {MAX_METADATA_CHARS:,} characters as JSON"
    return None


class ManifestError(Exception):
    """The manifest as a whole is unusable (the import fails before anything is written)."""


@dataclass
class ManifestRow:
    line: int
    file: str
    split: str | None = None
    external_id: str | None = None
    metadata: dict = field(default_factory=dict)
    ground_truth: dict = field(default_factory=dict)  # class name (as stored, once resolved) -> PRESENT / ABSENT
    error: str | None = None  # a row-level problem, reported for that file only


def _number_or_text(value):
    """A CSV cell as a number only where the number writes it back exactly: "007" (an id, a zip code), "+1",
    "1_000", "1.50" and "-0" stay text (a numeric LF still reads them as numbers)."""
    text = value.strip()
    if text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        pass
    else:
        return number if str(number) == text and abs(number) < 2**53 else value
    try:
        number = float(text)
    except ValueError:
        return value
    return number if math.isfinite(number) and repr(number) == text else value


def _check_metadata(metadata):
    if problem := metadata_size_problem(metadata):
        return problem
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_FIELD_NAME:
            return f"metadata field name {key!r} must be a non-empty string of at most {MAX_FIELD_NAME} characters"
        if isinstance(value, str) and len(value) > MAX_TEXT_VALUE:
            return f"metadata field {key!r} is longer than {MAX_TEXT_VALUE} characters"
        if isinstance(value, float) and not math.isfinite(value):
            return f"metadata field {key!r} is not a finite number"
    return None  # a list or object is checked as uploads' and PATCH's are (imports.storable), before any write


def _finish_row(row, raw_gt, valid_splits):
    if not row.file or not isinstance(row.file, str):
        row.error = "the row has no file"
        return row
    if row.split is not None and row.split not in valid_splits:
        row.error = f"split {row.split!r} is not one of {', '.join(valid_splits)}"
        return row
    for class_name, value in raw_gt.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        word = str(value).strip().upper()
        if word not in ("PRESENT", "ABSENT", "ABSTAIN"):
            row.error = f"ground truth for {class_name!r} is {value!r}; use PRESENT, ABSENT or ABSTAIN"
            return row
        if word != "ABSTAIN":
            row.ground_truth[class_name] = word
    row.error = _check_metadata(row.metadata)
    return row


def parse_manifest(data, *, file_name, valid_splits, max_rows):
    """Parse manifest bytes into rows; the format follows the file name (.csv, .jsonl or .json lines)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"the manifest is not UTF-8 text: {exc}") from None
    lower = file_name.lower()
    if lower.endswith(".csv"):
        rows = _parse_csv(text, valid_splits)
    elif lower.endswith((".jsonl", ".ndjson")):
        rows = _parse_jsonl(text, valid_splits)
    else:
        raise ManifestError(f"manifest {file_name!r} must be a .csv or .jsonl file")
    if len(rows) > max_rows:
        raise ManifestError(f"the manifest has {len(rows)} rows, more than the limit of {max_rows}")
    seen = {}
    for row in rows:
        if row.error is None and row.file in seen:
            row.error = f"file {row.file!r} is listed twice (first on line {seen[row.file]})"
        seen.setdefault(row.file, row.line)
    return rows


def _parse_csv(text, valid_splits):
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "file" not in header:
        raise ManifestError("the CSV manifest needs a 'file' column")
    if len(set(header)) != len(header):
        raise ManifestError("the CSV manifest repeats a column name")
    rows = []
    try:
        for line_number, record in enumerate(reader, start=2):
            if None in record:
                rows.append(ManifestRow(line=line_number, file=record.get("file") or "",
                                        error="the row has more cells than the header"))
                continue
            row = ManifestRow(
                line=line_number,
                file=(record.get("file") or "").strip(),
                split=(record.get("split") or "").strip() or None,
                external_id=(record.get("external_id") or "").strip() or None,
            )
            raw_gt = {}
            for key, value in record.items():
                if key in RESERVED:
                    continue
                if key.startswith(GT_PREFIX):
                    raw_gt[key[len(GT_PREFIX):]] = value
                    continue
                parsed = _number_or_text(value or "")
                if parsed is not None:
                    row.metadata[key] = parsed
            rows.append(_finish_row(row, raw_gt, valid_splits))
    except csv.Error as exc:
        raise ManifestError(f"the CSV manifest is malformed: {exc}") from None
    return rows


def _parse_jsonl(text, valid_splits):
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"line {line_number} of the manifest is not JSON: {exc.msg}") from None
        except RecursionError:
            raise ManifestError(f"line {line_number} of the manifest is nested too deeply") from None
        if not isinstance(record, dict):
            raise ManifestError(f"line {line_number} of the manifest is not a JSON object")
        row = ManifestRow(
            line=line_number,
            file=record.get("file") if isinstance(record.get("file"), str) else "",
            split=record.get("split") or None,
            external_id=str(record["external_id"]) if record.get("external_id") not in (None, "") else None,
        )
        nested = record.get("metadata") or {}
        raw_gt = record.get("ground_truth") or {}
        if not isinstance(nested, dict) or not isinstance(raw_gt, dict):
            row.error = "'metadata' and 'ground_truth' must be JSON objects"
            rows.append(row)
            continue
        raw_gt = dict(raw_gt)
        for key, value in record.items():
            if key in RESERVED:
                continue
            if key.startswith(GT_PREFIX):
                raw_gt[key[len(GT_PREFIX):]] = value
            elif value is not None:
                row.metadata[key] = value
        row.metadata.update({k: v for k, v in nested.items() if v is not None})
        rows.append(_finish_row(row, raw_gt, valid_splits))
    return rows


def ground_truth_resolve(rows, class_names):
    """Point each row's ground truth at the dataset's classes (`class_names`, as stored), matching names as
    names.class_name_key compares them: `Cat` and `ｃａｔ` are `cat`. A row naming a class the dataset does not
    have, or one class twice with two values, gets an error: it is refused alone."""
    by_key = {class_name_key(name): name for name in class_names}
    for row in rows:
        if row.error is None and row.ground_truth:
            row.error = _resolve_row(row, by_key)


def _resolve_row(row, by_key):
    resolved = {}
    for name, value in row.ground_truth.items():
        target = by_key.get(class_name_key(name))
        if target is None:
            return f"ground truth for {name!r}: the dataset has no such class (create it first)"
        if resolved.setdefault(target, value) != value:
            return f"ground truth for class {target!r} is given twice, as {resolved[target]} and {value}"
    row.ground_truth = resolved
    return None
