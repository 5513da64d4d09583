"""Writes of ground truth. Every change leaves an AnnotationEvent (who, when, old -> new) and moves the
per-(class, split) counts in the same transaction, so counts are exact and never need a scan.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import F, Max, QuerySet
from django.utils import timezone

from imagestudio.common.errors import NotFound, ValidationFailed, VersionConflict
from imagestudio.common.transactions import retry_transient
from imagestudio.datasets.locks import classes_lock_exclusive, classes_lock_shared, samples_lock
from imagestudio.datasets.services import dataset_labels_changed
from imagestudio.datasets.signals import ground_truth_imported, ground_truth_requested, sample_split_changed

from .models import (
    LABEL_VALUES,
    Annotation,
    AnnotationBatch,
    AnnotationEvent,
    AnnotationSource,
    GroundTruthCount,
    GroundTruthValue,
)
from .selectors import counts_recount

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imagestudio.datasets.models import Dataset, LabelClass, Sample

MAX_BULK_SAMPLES = 1_000_000  # samples a bulk filter may match
_CHUNK = 5_000  # ids per IN (...) list
COPY_AT = 1_000  # events written with COPY on Postgres from this many changes


@dataclass(frozen=True)
class Change:
    sample_id: int
    class_id: int
    split: str
    old: str
    new: str


def _chunks(items, size=_CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _count_deltas(changes):
    deltas = Counter()
    for change in changes:
        for value, sign in ((change.old, -1), (change.new, 1)):
            if value in LABEL_VALUES:
                deltas[(change.class_id, change.split, value)] += sign
    return deltas


def _apply_counts(deltas):
    """Move the counters; rows are touched in a fixed order so concurrent writers cannot deadlock."""
    keys = sorted({(class_id, split) for class_id, split, _ in deltas})
    if not keys:
        return
    GroundTruthCount.objects.bulk_create(
        [GroundTruthCount(label_class_id=class_id, split=split) for class_id, split in keys], ignore_conflicts=True
    )
    for class_id, split in keys:
        present = deltas.get((class_id, split, GroundTruthValue.PRESENT), 0)
        absent = deltas.get((class_id, split, GroundTruthValue.ABSENT), 0)
        if present or absent:
            GroundTruthCount.objects.filter(label_class_id=class_id, split=split).update(
                present=F("present") + present, absent=F("absent") + absent, version=F("version") + 1
            )


def _record(dataset, user, source, changes, batch=None):
    if connection.vendor == "postgresql" and len(changes) >= COPY_AT:
        # COPY: building and inserting ten thousand event objects costs more than the change itself.
        now = timezone.now()
        columns = "dataset_id, sample_id, label_class_id, old_value, new_value, user_id, source, batch_id, created_at"
        with connection.cursor() as cursor, cursor.connection.cursor().copy(
                f"COPY {AnnotationEvent._meta.db_table} ({columns}) FROM STDIN") as copy:
            for c in changes:
                copy.write_row((dataset.id, c.sample_id, c.class_id, c.old, c.new, getattr(user, "id", None), source,
                                getattr(batch, "id", None), now))
    else:
        AnnotationEvent.objects.bulk_create(
            (AnnotationEvent(dataset=dataset, sample_id=c.sample_id, label_class_id=c.class_id, old_value=c.old,
                             new_value=c.new, user=user, source=source, batch=batch) for c in changes),
            batch_size=_CHUNK,
        )
    _apply_counts(_count_deltas(changes))  # the counters' versions key the caches of ground truth


def annotations_import(*, dataset: Dataset, user: User | None,
                       rows: Iterable[tuple[int, str, LabelClass, str]]) -> int:
    """Ground truth arriving with imported samples: (sample_id, split, label_class, value) tuples.

    New samples have no labels yet; a merged duplicate's twin was locked by the import (its split in the tuple
    read under that lock) and keeps any label it holds by now: the import only fills pairs without one.
    Returns the number of annotations written."""
    unique = {}
    for row in rows:  # a twin may get the same label from its own file and from a merged duplicate
        if row[3] in LABEL_VALUES:
            unique.setdefault((row[0], row[2].id), row)
    rows = list(unique.values())
    if not rows:
        return 0
    with transaction.atomic():  # joins the import's transaction
        classes_lock_shared(class_ids={label_class.id for _, _, label_class, _ in rows})
        existing = _locked_annotations({row[0] for row in rows}, {row[2].id for row in rows})
        changes, to_create, to_update = [], [], {}
        for sample_id, split, label_class, value in rows:
            row_id, old = existing.get((sample_id, label_class.id), (None, GroundTruthValue.ABSTAIN))
            if old != GroundTruthValue.ABSTAIN:
                continue
            changes.append(Change(sample_id, label_class.id, split, old, value))
            if row_id is None:
                to_create.append(Annotation(sample_id=sample_id, label_class=label_class, value=value, updated_by=user))
            else:
                to_update.setdefault(value, []).append(row_id)
        Annotation.objects.bulk_create(to_create, batch_size=_CHUNK)
        now = timezone.now()
        for value, row_ids in to_update.items():
            _update_values(row_ids, value, user, now)
        _record(dataset, user, AnnotationSource.IMPORT, changes)
        return len(changes)


def _locked_annotations(sample_ids, class_ids):
    """{(sample id, class id): (row id, value)} of the existing rows, locked in (sample, class) order. The caller
    holds the samples' locks (datasets/locks.py)."""
    sample_ids, class_ids, found = sorted(sample_ids), sorted(class_ids), {}
    for chunk in _chunks(sample_ids):
        rows = (Annotation.objects.select_for_update()
                .filter(sample_id__in=chunk, label_class_id__in=class_ids)
                .order_by("sample_id", "label_class_id").values_list("id", "sample_id", "label_class_id", "value"))
        for row_id, sample_id, class_id, value in rows:
            found[(sample_id, class_id)] = (row_id, value)
    return found


@retry_transient
def annotation_set(*, dataset: Dataset, user: User | None, sample: Sample, label_class: LabelClass, value: str,
                   expected_version: int | None = None) -> tuple[Annotation | None, bool]:
    """Set (PRESENT / ABSENT) or clear (ABSTAIN) one ground truth.

    `expected_version` is the version the caller last saw (0 when never annotated); a mismatch is a
    409, so a stale client cannot silently overwrite someone else's label. Returns (annotation, changed).
    """
    with transaction.atomic():
        classes_lock_shared(class_ids=[label_class.id])
        sample.split = samples_lock(sample_ids=[sample.id])[sample.id]  # the split this label counts in, under lock
        row = Annotation.objects.select_for_update().filter(sample=sample, label_class=label_class).first()
        current = row.version if row else 0
        if expected_version is not None and expected_version != current:
            raise VersionConflict(
                f"The label changed since version {expected_version}; it is now version {current} "
                f"({row.value if row else GroundTruthValue.ABSTAIN}). Reload and retry.",
                current_version=current,
            )
        old = row.value if row else GroundTruthValue.ABSTAIN
        if old == value:
            return row, False
        if row is None:
            row = Annotation.objects.create(sample=sample, label_class=label_class, value=value, updated_by=user)
        else:
            row.value, row.version, row.updated_by = value, row.version + 1, user
            row.save(update_fields=["value", "version", "updated_by", "updated_at"])
        _record(dataset, user, AnnotationSource.API, [Change(sample.id, label_class.id, sample.split, old, value)])
        return row, True


@retry_transient
def annotations_bulk_set(*, dataset: Dataset, user: User | None, samples: QuerySet[Sample],
                         classes: Sequence[LabelClass], value: str,
                         sample_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """Give every (sample, class) pair one value, in one transaction.

    `samples` is a queryset of the dataset's samples (ids or a filter, resolved by the caller); with explicit
    `sample_ids`, an id outside the dataset is a 400 before anything is written.
    Returns counts: samples, changed and unchanged (sample, class) pairs, and the batch id for undo.
    """
    classes = list({label_class.id: label_class for label_class in classes}.values())  # one class named twice
    targets = list(samples.order_by("id").values_list("id", flat=True)[:MAX_BULK_SAMPLES + 1])
    if sample_ids is not None:
        missing = set(sample_ids) - set(targets)
        if missing:
            raise ValidationFailed(f"Not samples of this dataset: {sorted(missing)[:10]}.", field="sample_ids")
    if len(targets) > MAX_BULK_SAMPLES:
        raise ValidationFailed(f"The filter matches more than {MAX_BULK_SAMPLES} samples; narrow it.",
                               field="filter")
    if not targets:
        return {"samples": 0, "changed": 0, "unchanged": 0, "batch": None}
    with transaction.atomic():
        return _bulk_once(dataset, user, targets, [c.id for c in classes], value)


def _bulk_once(dataset, user, targets, class_ids, value):
    classes_lock_shared(class_ids=class_ids)
    split_of = samples_lock(sample_ids=targets)  # the filter was resolved before the lock; the splits are not
    sample_ids = sorted(split_of)
    existing = _locked_annotations(sample_ids, class_ids)
    changes, to_update, to_create = [], [], []
    for sample_id in sample_ids:
        for class_id in class_ids:
            row_id, old = existing.get((sample_id, class_id), (None, GroundTruthValue.ABSTAIN))
            if old == value:
                continue
            changes.append(Change(sample_id, class_id, split_of[sample_id], old, value))
            if row_id is None:
                to_create.append(Annotation(sample_id=sample_id, label_class_id=class_id, value=value, updated_by=user))
            else:
                to_update.append(row_id)
    now = timezone.now()
    _update_values(to_update, value, user, now)
    Annotation.objects.bulk_create(to_create, batch_size=_CHUNK)
    batch = None
    if changes:
        batch = AnnotationBatch.objects.create(id=uuid.uuid4(), dataset=dataset, user=user, value=value,
                                               changed=len(changes))
        _record(dataset, user, AnnotationSource.BULK, changes, batch=batch)
    total = len(sample_ids) * len(class_ids)
    return {"samples": len(sample_ids), "changed": len(changes), "unchanged": total - len(changes),
            "batch": batch.id if batch else None}


def _update_values(row_ids, value, user, now):
    """Set one value on many annotation rows, bumping their versions."""
    if connection.vendor == "postgresql":  # one statement with an array parameter, whatever the count
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Annotation._meta.db_table} SET value = %s, version = version + 1, "  # noqa: S608
                           "updated_by_id = %s, updated_at = %s WHERE id = ANY(%s)",
                           [value, getattr(user, "id", None), now, list(row_ids)])
        return
    for chunk in _chunks(row_ids):
        Annotation.objects.filter(id__in=chunk).update(value=value, version=F("version") + 1, updated_by=user,
                                                       updated_at=now)


@retry_transient
def _changed_since(batch, class_ids):
    """(sample, class) pairs whose label someone changed after the batch, even back to the batch's value; bulk
    actions undone since and their undos aside (undo walks back through a user's batches)."""
    last = batch.events.aggregate(last=Max("id"))["last"]
    if last is None:
        return set()
    # Only the batch's classes: later actions on other classes of the dataset may be many rows
    later = AnnotationEvent.objects.filter(dataset_id=batch.dataset_id, id__gt=last, label_class_id__in=class_ids)
    later = later.exclude(source=AnnotationSource.UNDO).exclude(batch__undone_at__isnull=False)
    return set(later.values_list("sample_id", "label_class_id"))


def annotations_undo_last_bulk(*, dataset: Dataset, user: User | None) -> dict[str, Any]:
    """Revert the user's most recent bulk action not undone yet.

    A label changed again since that action is left alone and counted as skipped.
    """
    with transaction.atomic():
        batch = (AnnotationBatch.objects.select_for_update()
                 .filter(dataset=dataset, user=user, undone_at__isnull=True).order_by("-created_at").first())
        if batch is None:
            raise NotFound("You have no bulk action on this dataset left to undo.", code="nothing_to_undo")
        events = list(batch.events.values_list("sample_id", "label_class_id", "old_value", "new_value"))
        classes_lock_shared(class_ids={e[1] for e in events})
        split_of = samples_lock(sample_ids={e[0] for e in events})  # where each label counts now, under lock
        current = _locked_annotations(split_of, {e[1] for e in events})
        changed_since = _changed_since(batch, {e[1] for e in events})
        changes, by_target, skipped = [], {}, 0
        for sample_id, class_id, old, new in events:
            row_id, value = current.get((sample_id, class_id), (None, GroundTruthValue.ABSTAIN))
            if row_id is None or value != new or (sample_id, class_id) in changed_since:
                skipped += 1
                continue
            changes.append(Change(sample_id, class_id, split_of[sample_id], new, old))
            by_target.setdefault(old, []).append(row_id)
        now = timezone.now()
        for target, row_ids in by_target.items():
            _update_values(row_ids, target, user, now)
        _record(dataset, user, AnnotationSource.UNDO, changes)
        batch.undone_at = now
        batch.save(update_fields=["undone_at"])
    return {"batch": batch.id, "reverted": len(changes), "skipped": skipped}


def counts_move_sample(*, sample: Sample, old_split: str, new_split: str) -> None:
    """A sample changed split: its labels move between the per-split counters. The caller holds the sample's
    lock (sample_update does), so no label of it changes meanwhile."""
    values = Annotation.objects.filter(sample=sample, value__in=LABEL_VALUES).values_list("label_class_id", "value")
    deltas = Counter()
    for class_id, value in values:
        deltas[(class_id, old_split, value)] -= 1
        deltas[(class_id, new_split, value)] += 1
    _apply_counts(deltas)


@retry_transient
def counts_rebuild(*, dataset: Dataset) -> None:
    """Recompute the counters of a dataset from the annotations (a repair tool; writes keep them exact), with
    its classes locked so that no writer of labels or splits runs meanwhile (datasets/locks.py)."""
    with transaction.atomic():
        classes_lock_exclusive(class_ids=dataset.classes.values_list("id", flat=True))
        GroundTruthCount.objects.filter(label_class__dataset=dataset).delete()
        GroundTruthCount.objects.bulk_create(
            GroundTruthCount(label_class_id=class_id, split=split, present=present, absent=absent)
            for (class_id, split), (present, absent) in counts_recount(dataset=dataset).items()
        )
        dataset_labels_changed(dataset_id=dataset.id)  # the counters' versions start again from 0


def _on_split_changed(sender, *, sample, old_split, new_split, **kwargs):
    counts_move_sample(sample=sample, old_split=old_split, new_split=new_split)


def _on_ground_truth_imported(sender, *, dataset, user, rows, **kwargs):
    return annotations_import(dataset=dataset, user=user, rows=rows)


def _on_ground_truth_requested(sender, *, dataset, sample_ids, **kwargs):
    labels = {}
    rows = Annotation.objects.filter(sample_id__in=sample_ids, label_class__dataset=dataset).values_list(
        "sample_id", "label_class__name", "value")
    for sample_id, class_name, value in rows:
        labels.setdefault(sample_id, {})[class_name] = value
    return labels


def signals_connect() -> None:
    """Follow the datasets domain's events (see datasets/signals.py)."""
    sample_split_changed.connect(_on_split_changed, dispatch_uid="annotations.split_changed")
    ground_truth_imported.connect(_on_ground_truth_imported, dispatch_uid="annotations.ground_truth_imported")
    ground_truth_requested.connect(_on_ground_truth_requested, dispatch_uid="annotations.ground_truth_requested")
