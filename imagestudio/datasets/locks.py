"""The one order in which every writer of labels, splits and their counters locks rows. Two transactions can
only deadlock by taking the same rows in opposite orders, so each writer takes what it needs in this order:

1. LabelClass rows, ascending id: shared (FOR KEY SHARE) by writers of labels and counters, exclusive by what
   must see no such writer at all (a counter recount, a class delete).
2. Sample rows, ascending id (FOR NO KEY UPDATE). A sample's split is read here, under the lock, never before:
   a split move holds the same lock, so labels and their counters always move with the split they count in.
3. Annotation rows, ascending (sample_id, label_class_id).
4. GroundTruthCount rows, ascending (label_class_id, split).
5. The Dataset row (split_counts, samples_version; labels_version, which a class delete or a counter rebuild
   grows), last of these.
6. Rows of the products that name the dataset's classes (Resample, TrainingSet, FastModel), after the Dataset row:
   a resample draw, a model start and a class delete take them in this order.

An undo locks its AnnotationBatch row before step 1 (no other writer locks batches). Samples an import
creates are invisible to every other writer until it commits, so inserting them comes first.

FOR NO KEY UPDATE and FOR KEY SHARE leave foreign-key checks alone: inserting a comment, a vote or an
embedding of a locked sample does not wait.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from .models import Dataset, LabelClass, Sample

_CHUNK = 5_000  # ids per IN (...) list


def classes_lock_shared(*, class_ids: Iterable[int]) -> None:
    """Step 1 for a writer: the classes stay while it writes, and no recount runs beside it."""
    ids = sorted(set(class_ids))
    if ids and connection.vendor == "postgresql":  # SQLite runs one writer at a time anyway
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {LabelClass._meta.db_table} WHERE id = ANY(%s) "  # noqa: S608
                           "ORDER BY id FOR KEY SHARE", [ids])


def dataset_classes_lock_shared(*, dataset_id: int) -> None:
    """Step 1 for a writer that may touch any class of the dataset (a split move carries all its labels)."""
    classes_lock_shared(class_ids=LabelClass.objects.filter(dataset_id=dataset_id).values_list("id", flat=True))


def classes_lock_exclusive(*, class_ids: Iterable[int]) -> None:
    """Step 1 taken alone: waits for every writer of these classes' labels and counters, and holds off new ones."""
    list(LabelClass.objects.select_for_update().filter(id__in=sorted(set(class_ids))).order_by("id")
         .values_list("id", flat=True))


def samples_lock(*, sample_ids: Iterable[int]) -> dict[int, str]:
    """Step 2: lock the samples and return {sample id: split} as it stands under the lock (a sample deleted
    meanwhile is absent)."""
    ids = sorted(set(sample_ids))
    splits = {}
    for start in range(0, len(ids), _CHUNK):
        splits.update(Sample.objects.select_for_update(no_key=True).filter(id__in=ids[start:start + _CHUNK])
                      .order_by("id").values_list("id", "split"))
    return splits


def dataset_lock(*, dataset_id: int) -> Dataset:
    """Step 5: the dataset row, with its split counts as they stand under the lock."""
    return Dataset.objects.select_for_update(no_key=True).only("split_counts").get(pk=dataset_id)
