"""CSV exports as jobs: rows are streamed to a file, never all held in memory. On Postgres the server writes the
CSV (one COPY of a query; ~10x the rows per second of rows formatted in Python); elsewhere Python does."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction

from imagestudio.annotations.models import LABEL_VALUES, Annotation
from imagestudio.common.arrays import locate
from imagestudio.common.errors import ValidationFailed
from imagestudio.common.votes import VOTE_WORDS
from imagestudio.datasets.metadata_sql import MetadataText
from imagestudio.datasets.models import LabelClass, Sample, Split
from imagestudio.datasets.selectors import metadata_field_exists
from imagestudio.jobs.services import job_enqueue, job_progress
from imagestudio.labeling import metrics
from imagestudio.training.models import FastModel, TrainingSet
from imagestudio.training.selectors import (
    artifact_arrays,
    model_staleness,
    ready_model,
    ready_training_set,
    training_set_staleness,
)

from .cells import SafeWriter
from .models import Export

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imagestudio.datasets.models import Dataset
    from imagestudio.jobs.models import Job

EXPORT_TASK = "workers.tasks.exports.write_export"
SAMPLE_COLUMNS = ("id", "external_id", "file_name", "split", "width", "height", "format", "bytes", "sha256",
                  "created_at")
DEFAULT_COLUMNS = ("id", "external_id", "file_name", "split")
CHUNK = 5000
MAX_FIELDS = 200


def export_start(*, dataset: Dataset, user: User, kind: str, columns: Sequence[str] | None = None,
                 fields: Sequence[str] = (), splits: Sequence[str] | None = None, ground_truth: bool = True,
                 model: int | None = None, training_set: int | None = None, raw: bool = False) -> Export:
    """Validate what the CSV will hold and queue the job that writes it."""
    columns = list(columns or DEFAULT_COLUMNS)
    unknown = [c for c in columns if c not in SAMPLE_COLUMNS]
    if unknown:
        raise ValidationFailed(f"Unknown columns {unknown}; choose from {', '.join(SAMPLE_COLUMNS)}.", field="columns")
    if len(fields) > MAX_FIELDS:
        raise ValidationFailed(f"At most {MAX_FIELDS} metadata fields.", field="fields")
    # One header per column: a reader going by header name would read the first of two
    repeated = next((name for name, count in Counter([*columns, *fields]).items() if count > 1), None)
    if repeated is not None:
        raise ValidationFailed(f"{repeated!r} is asked twice (columns and metadata fields name the CSV's columns).",
                               field="fields" if repeated in fields else "columns")
    # As a pattern LF's field is checked: a misspelt name would export an empty column without a word. The first
    # missing one stops the check (each is a scan when absent).
    if any(dataset.split_counts.values()):
        missing = next((name for name in fields if not metadata_field_exists(dataset=dataset, field=name)), None)
        if missing is not None:
            raise ValidationFailed(f"No sample of this dataset has a metadata field {missing!r}.", field="fields")
    # Each belongs to one kind: given with the other, it was ignored without a word.
    for name, value, its_kind in (("model", model, Export.Kind.DATASET),
                                  ("training_set", training_set, Export.Kind.TRAINING_LABELS)):
        if value is not None and kind != its_kind:
            raise ValidationFailed(f"'{name}' goes with kind {its_kind!r} exports, not {kind!r}.", field=name)
    params = {"columns": columns, "fields": list(fields), "splits": list(splits or Split.values),
              "ground_truth": ground_truth, "raw": raw}
    if kind == Export.Kind.DATASET and model is not None:
        found = ready_model(dataset=dataset, model_id=model)
        if found is None:
            raise ValidationFailed(f"No trained model {model} in this dataset.", field="model")
        params["model"] = found.id
        params["stale_sources"] = [f"{found}: {reason}" for reason in model_staleness(found)]
    if kind == Export.Kind.TRAINING_LABELS:
        chosen = (TrainingSet.objects.filter(dataset=dataset, pk=training_set).first() if training_set
                  else ready_training_set(dataset=dataset))
        if chosen is None or not chosen.ready:
            raise ValidationFailed("Name a ready training set of this dataset (or build one first).",
                                   field="training_set")
        params["training_set"] = chosen.id
        params["stale_sources"] = [f"training set {chosen.id}: {reason}" for reason in training_set_staleness(chosen)]
    with transaction.atomic():  # a job that cannot be queued (broker down: a 503) leaves no export without one
        export = Export.objects.create(dataset=dataset, kind=kind, params=params, created_by=user)
        job, _ = job_enqueue(kind="export", task_name=EXPORT_TASK, dataset=dataset, creator=user,
                             params={"export": export.id})
        Export.objects.filter(pk=export.pk).update(job=job)
    export.refresh_from_db()
    return export


def export_run(job: Job) -> dict[str, Any]:
    export = Export.objects.select_related("dataset").get(pk=job.params["export"])
    params, dataset = export.params, export.dataset
    classes = list(LabelClass.objects.filter(dataset=dataset).order_by("id"))
    model_arrays = artifact_arrays(FastModel.objects.get(pk=params["model"])) if params.get("model") else None
    ts_arrays = (artifact_arrays(TrainingSet.objects.get(pk=params["training_set"]))
                 if export.kind == Export.Kind.TRAINING_LABELS else None)
    header = [*params["columns"], *params["fields"]]
    if params["ground_truth"]:
        header += [f"gt:{c.name}" for c in classes]
    if model_arrays is not None:
        header += [name for c in classes if f"scores_{c.id}" in model_arrays
                   for name in (f"pred:{c.name}", f"prob:{c.name}")]
    if ts_arrays is not None:
        header += [name for c in classes if f"label_{c.id}" in ts_arrays  # a class the set holds
                   for name in (f"label:{c.name}", f"prob:{c.name}")]
    total = Sample.objects.filter(dataset=dataset, split__in=params["splits"]).count()

    def progress(written):
        job_progress(job_id=job.id, progress=written / max(total, 1), message=f"{written}/{total} rows")

    started = time.monotonic()
    handle, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(_csv_line(header, params.get("raw", False)))
            if connection.vendor == "postgresql":  # seconds at 500K rows: no progress on its busy connection
                written = _rows_by_copy(stream, dataset, params, classes, (model_arrays, ts_arrays))
            else:
                written = _rows_by_python(stream, dataset, params, classes, (model_arrays, ts_arrays), progress)
        name = f"datasets/{dataset.id}/exports/{export.id}-{export.kind}.csv"
        default_storage.delete(name)  # a delivery whose worker died after writing it: a new name would orphan it
        with open(path, "rb") as stream:
            key = default_storage.save(name, File(stream))
        size = default_storage.size(key)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    Export.objects.filter(pk=export.pk).update(file=key, rows=written, bytes=size, ready=True)
    elapsed = time.monotonic() - started
    return {"export": export.id, "rows": written, "bytes": size, "seconds": round(elapsed, 3),
            "rows_per_second": round(written / elapsed, 1) if elapsed else None,
            **({"stale_sources": params["stale_sources"]} if "stale_sources" in params else {})}


def _csv_line(values, raw):
    """One CSV line as the rows are written: LF-terminated, as Postgres's COPY ends its lines."""
    text = io.StringIO()
    SafeWriter(text, raw=raw, lineterminator="\n").writerow(values)
    return text.getvalue().encode("utf-8")


def _artifact_columns(ids, classes, artifacts):
    """The model's and the training set's columns for the samples `ids`, as the CSV's text ("" where the
    artifact has no row for a sample)."""
    model_arrays, ts_arrays = artifacts
    words = VOTE_WORDS
    extra = []
    for arrays, kind in ((model_arrays, "model"), (ts_arrays, "training")):
        if arrays is None:
            continue
        where, hit = locate(arrays["ids"], ids)
        for c in classes:
            if kind == "model" and f"scores_{c.id}" in arrays:
                scores = arrays[f"scores_{c.id}"][where]
                extra.append([words[1 if s >= 0 else -1] if h else "" for s, h in zip(scores, hit, strict=True)])
                extra.append([f"{p:.6f}" if h else "" for p, h in zip(metrics.sigmoid(scores), hit, strict=True)])
            elif kind == "training" and f"label_{c.id}" in arrays:
                labels = arrays[f"label_{c.id}"][where]
                probs = (arrays[f"probability_{c.id}"][where] if f"probability_{c.id}" in arrays
                         else np.full(len(ids), np.nan))
                extra.append([words[int(v)] if h else "" for v, h in zip(labels, hit, strict=True)])
                extra.append(["" if not h or np.isnan(p) else f"{p:.6f}" for p, h in zip(probs, hit, strict=True)])
    return extra


# ---------------------------------------------------------------- Postgres: the CSV written by the server's COPY

# A cell a spreadsheet could run starts with one of cells.FORMULA_STARTS and is no plain number. A plain number
# here: Python's float syntax (underscores between digits, blanks around), at most 200 characters and an exponent
# of at most two digits, so that it is also finite as cells.neutralized requires; a number beyond those bounds
# gets the quote as well (harmless), text that is no number always does.
_FORMULA_START = r"^[-=+@\t\r]"
_PLAIN_NUMBER = r"^\s*[-+]?(\d(_?\d)*(\.(\d(_?\d)*)?)?|\.\d(_?\d)*)([eE][-+]?\d(_?\d)?)?\s*$"
_TEXT_COLUMNS = ("external_id", "file_name", "format", "sha256")


def _text_cell(column, raw):
    """A text column as the Python writer writes it: empty text as an empty cell (NULL: COPY quotes ''),
    neutralized unless raw."""
    text = f"NULLIF({column}, '')"
    if raw:
        return text
    return (f"CASE WHEN {text} ~ E'{_FORMULA_START}' AND NOT ({text} ~ '{_PLAIN_NUMBER}' AND length({text}) <= 200) "
            f"THEN '''' || {text} ELSE {text} END")


def _sample_cell(name, raw):
    if name in _TEXT_COLUMNS:
        return _text_cell(f"s.{name}", raw)
    if name == "created_at":  # as str() of the aware datetime in UTC: microseconds only when there are some
        return (r"regexp_replace(to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '\.000000$', '')"
                " || '+00:00'")
    return f"s.{name}"


def _rows_by_copy(stream, dataset, params, classes, artifacts):
    """The rows by one `COPY (SELECT ...) TO STDOUT` in CSV: the ground truth pivoted in SQL, the artifacts'
    columns through a temporary table joined by sample id; streamed to `stream`. Returns the rows written."""
    raw = params.get("raw", False)
    fields = params["fields"]
    columns = ", ".join(f"s.{name}" for name in SAMPLE_COLUMNS)
    fields_sql = "".join(f", s.metadata ->> %s AS field{i}" for i in range(len(fields)))
    samples = (f"SELECT {columns}{fields_sql} FROM {Sample._meta.db_table} s "  # noqa: S608
               "WHERE s.dataset_id = %s AND s.split = ANY(%s)")
    select = [_sample_cell(name, raw) for name in params["columns"]]
    select += [_text_cell(f"s.field{i}", raw) for i in range(len(fields))]
    joins = []
    if params["ground_truth"] and classes:
        pivot = ", ".join(f"max(value) FILTER (WHERE label_class_id = {int(c.id)}) AS gt{i}"
                          for i, c in enumerate(classes))
        class_ids = ", ".join(str(int(c.id)) for c in classes)
        values = ", ".join(f"'{value}'" for value in LABEL_VALUES)
        joins.append(f"LEFT JOIN (SELECT sample_id, {pivot} FROM {Annotation._meta.db_table} "  # noqa: S608
                     f"WHERE label_class_id IN ({class_ids}) AND value IN ({values}) GROUP BY sample_id) g "
                     "ON g.sample_id = s.id")
        select += [f"g.gt{i}" for i in range(len(classes))]
    arguments = [*fields, dataset.id, list(params["splits"])]
    with transaction.atomic(), connection.cursor() as cursor:
        if any(arrays is not None for arrays in artifacts):
            width = _artifact_table(cursor.cursor, dataset, params, classes, artifacts)
            joins.append("LEFT JOIN pg_temp.export_artifacts x ON x.sample_id = s.id")
            select += [f"x.c{i}" for i in range(width)]
        query = f"SELECT {', '.join(select)} FROM ({samples}) s {' '.join(joins)} ORDER BY s.id"  # noqa: S608
        with cursor.cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", arguments) as copy:
            for data in copy:
                stream.write(data)
    return Sample.objects.filter(dataset=dataset, split__in=params["splits"]).count()


def _artifact_table(pg, dataset, params, classes, artifacts):
    """pg_temp.export_artifacts (sample_id, c0, c1, ...): the artifacts' columns of the exported samples, gone at
    the commit. Returns the number of columns."""
    ids = np.fromiter(Sample.objects.filter(dataset=dataset, split__in=params["splits"]).order_by("id")
                      .values_list("id", flat=True).iterator(chunk_size=50_000), dtype=np.int64)
    extra = _artifact_columns(ids, classes, artifacts)
    pg.execute(f"CREATE TEMP TABLE export_artifacts (sample_id bigint PRIMARY KEY"
               f"{''.join(f', c{i} text' for i in range(len(extra)))}) ON COMMIT DROP")
    with pg.copy("COPY pg_temp.export_artifacts FROM STDIN") as copy:  # words and numbers: nothing to escape
        for start in range(0, len(ids), CHUNK):
            rows = zip(ids[start:start + CHUNK].tolist(), *(column[start:start + CHUNK] for column in extra),
                       strict=True)
            copy.write("".join("\t".join([str(row[0]), *(v or r"\N" for v in row[1:])]) + "\n" for row in rows))
    return len(extra)


# ---------------------------------------------------------------- elsewhere (SQLite): the CSV written in Python


def _rows_by_python(stream, dataset, params, classes, artifacts, progress):
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    writer = SafeWriter(text, raw=params.get("raw", False), lineterminator="\n")
    samples = Sample.objects.filter(dataset=dataset, split__in=params["splits"]).order_by("id")
    # The sample id first, whatever the columns asked (it keys the labels and artifacts); metadata as text (->>):
    # no JSON decoding per row.
    source = ["id", *params["columns"], *(MetadataText(f) for f in params["fields"])]
    written, chunk = 0, []
    for row in samples.values_list(*source).iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            written += _write_chunk(writer, chunk, params, classes, artifacts)
            chunk = []
            progress(written)
    written += _write_chunk(writer, chunk, params, classes, artifacts)
    text.detach()
    return written


def _write_chunk(writer, chunk, params, classes, artifacts):
    if not chunk:
        return 0
    ids = np.array([row[0] for row in chunk], dtype=np.int64)
    truth = {}
    if params["ground_truth"]:
        # The chunk is ascending: an id range reads the same rows as a 5,000-item IN list, far cheaper.
        wanted = set(ids.tolist())
        rows = Annotation.objects.filter(label_class_id__in=[c.id for c in classes], sample_id__gte=int(ids[0]),
                                         sample_id__lte=int(ids[-1]), value__in=LABEL_VALUES)
        for sample_id, class_id, value in rows.values_list("sample_id", "label_class_id", "value"):
            if sample_id in wanted:
                truth[(sample_id, class_id)] = value
    extra = _artifact_columns(ids, classes, artifacts)
    for index, row in enumerate(chunk):
        values = list(row[1:])
        if params["ground_truth"]:
            values += [truth.get((row[0], c.id), "") for c in classes]
        values += [column[index] for column in extra]
        writer.writerow(["" if v is None else v for v in values])
    return len(chunk)


def export_file(export: Export) -> File:
    """The stored CSV as an open binary stream."""
    return default_storage.open(export.file, "rb")
