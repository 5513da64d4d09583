"""Storage of an import batch: content-addressed blobs, then the rows in one transaction. Rows are unique per
(dataset, sha256) and (dataset, external_id): a row another import stored first is skipped (ON CONFLICT DO
NOTHING) and read back, never retried."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from imagestudio import pipeline
from imagestudio.common.transactions import retry_transient

from ..imaging import ValidatedImage
from ..locks import classes_lock_shared
from ..models import Sample
from ..services import dataset_add_counts, search_text
from ..signals import ground_truth_imported, ground_truth_requested
from .dedupe import Additions, StoredTwin
from .plan import Item

if TYPE_CHECKING:
    from imagestudio.jobs.models import Job

    from ..models import Dataset


@dataclass(frozen=True)
class Validated:
    """An item whose bytes decoded as an image: `data` is what to store (the image alone, see imaging)."""

    item: Item
    image: ValidatedImage
    data: bytes


@dataclass(frozen=True)
class StoredBatch:
    sample_ids: dict[str, int]  # sha256 -> id of the samples this batch created
    annotations: int


def stored_twins(*, dataset: Dataset, job: Job, sha256s: list[str]) -> dict[str, StoredTwin]:
    rows = list(Sample.objects.filter(dataset=dataset, sha256__in=sha256s).values_list(
        "sha256", "id", "external_id", "import_job_id", "split", "metadata"))
    labels = _stored_ground_truth(dataset, [row[1] for row in rows])
    return {sha: StoredTwin(pk, external_id, job_id == job.id, split, metadata, labels.get(pk, {}))
            for sha, pk, external_id, job_id, split, metadata in rows}


def _stored_ground_truth(dataset, sample_ids):
    if not sample_ids:
        return {}
    labels = {}
    for _, answer in ground_truth_requested.send(sender=Sample, dataset=dataset, sample_ids=sample_ids):
        labels.update(answer)
    return labels


def external_ids_taken(*, dataset: Dataset, external_ids: list[str]) -> set[str]:
    return set(Sample.objects.filter(dataset=dataset, external_id__in=external_ids)
               .values_list("external_id", flat=True))


def batch_store(*, job: Job, dataset: Dataset, new: list[Validated], merges: dict[str, Additions],
                classes_by_name: dict) -> StoredBatch:
    """Store blobs and rows of new samples and merge duplicates into their twins, in one transaction; a row
    another import stored first is left out of `sample_ids`. Blobs this call wrote are removed again when the
    transaction fails or no row ends up using them."""
    if not new and not merges:
        return StoredBatch({}, 0)
    written: dict[str, list[str]] = {}
    try:
        rows = [_sample_row(job, dataset, entry, written) for entry in new]
        created, annotations = _store_rows(job, dataset, new, rows, merges, classes_by_name)
    except Exception:
        _delete(key for keys in written.values() for key in keys)
        raise
    sample_ids = {row.sha256: pk for _, row, pk in created}
    lost = set(written) - set(sample_ids)
    if lost:
        still_used = set(Sample.objects.filter(dataset=dataset, sha256__in=lost).values_list("sha256", flat=True))
        _delete(key for sha in lost - still_used for key in written[sha])
    return StoredBatch(sample_ids, annotations)


@retry_transient
def _store_rows(job, dataset, new, rows, merges, classes_by_name):
    """The batch's rows in one transaction, locking in the order of datasets/locks.py: the new samples (no
    other writer sees them before the commit), then the classes, the merged twins, their labels and counters
    (one send, so the counters are taken in order once), the dataset row last."""
    with transaction.atomic():
        Sample.objects.bulk_create(rows, ignore_conflicts=True)
        mine = {(sha, external_id): pk for sha, external_id, pk in Sample.objects.filter(
            dataset=dataset, import_job=job, sha256__in=[row.sha256 for row in rows]
        ).values_list("sha256", "external_id", "id")}
        created = [(entry, row, mine[(row.sha256, row.external_id)]) for entry, row in zip(new, rows, strict=True)
                   if (row.sha256, row.external_id) in mine]
        labels = [(pk, row.split, classes_by_name[name], value)
                  for entry, row, pk in created for name, value in entry.item.ground_truth.items()]
        if labels or any(additions.ground_truth for additions in merges.values()):
            classes_lock_shared(class_ids=[label_class.id for label_class in classes_by_name.values()])
        merged_labels, merged_metadata = _merge(dataset, merges, classes_by_name)
        annotations = _send_ground_truth(job, dataset, labels + merged_labels)
        dataset_add_counts(dataset_id=dataset.id, counts=Counter(row.split for _, row, _ in created))
        if merged_metadata:  # with the merge, so that a job killed after this commit cannot lose the refresh
            pipeline.after_samples_changed(dataset=dataset, user=job.creator, sample_ids=merged_metadata)
    return created, annotations


def _merge(dataset, merges, classes_by_name):
    """Add merged duplicates' metadata keys to their twins (locked, in id order). Returns the labels to add
    (dedupe checked that nothing contradicts), each with its twin's split as read under the lock, and the ids of
    the twins whose metadata changed."""
    labels, changed = [], []
    twins = Sample.objects.select_for_update(no_key=True).filter(dataset=dataset, sha256__in=list(merges))
    for sample in twins.order_by("id"):
        additions = merges[sample.sha256]
        if additions.metadata:
            sample.metadata = {**sample.metadata, **additions.metadata}
            sample.search_text = search_text(sample.external_id, sample.file_name, sample.metadata)
            sample.save(update_fields=["metadata", "search_text"])
            changed.append(sample.pk)
        labels += [(sample.pk, sample.split, classes_by_name[name], value)
                   for name, value in additions.ground_truth.items()]
    return labels, changed


def _send_ground_truth(job, dataset, rows):
    if not rows:
        return 0
    return sum(stored for _, stored in ground_truth_imported.send(
        sender=Sample, dataset=dataset, user=job.creator, rows=rows))


def _store_blob(key, data, written):
    if default_storage.exists(key):
        return key
    saved = default_storage.save(key, ContentFile(data))
    written.append(saved)
    return saved


def _delete(keys):
    for key in keys:
        default_storage.delete(key)


def _sample_row(job, dataset, entry: Validated, written) -> Sample:
    item, image = entry.item, entry.image
    folder, shard = f"datasets/{dataset.id}", image.sha256[:2]
    mine = written.setdefault(image.sha256, [])
    original = _store_blob(f"{folder}/originals/{shard}/{image.sha256}{image.extension}", entry.data, mine)
    thumbnail = _store_blob(f"{folder}/thumbnails/{shard}/{image.sha256}.jpg", image.thumbnail_jpeg, mine)
    return Sample(
        dataset=dataset,
        split=item.split,
        external_id=item.external_id[:512],
        file_name=os.path.basename(item.name)[:512],
        original=original,
        thumbnail=thumbnail,
        width=image.width,
        height=image.height,
        format=image.format,
        bytes=image.bytes,
        sha256=image.sha256,
        metadata=item.metadata,
        search_text=search_text(item.external_id, item.name, item.metadata),
        import_job=job,
    )
