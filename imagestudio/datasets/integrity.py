"""Integrity of what the datasets domain stores beside its rows: the per-split sample counts and the blobs
(original image, thumbnail) every sample names."""

from __future__ import annotations

from django.core.files.storage import default_storage

from imagestudio.common.integrity import Drift
from imagestudio.common.transactions import read_snapshot

from .models import Dataset, Sample
from .selectors import sample_split_counts
from .services import dataset_recount_splits

SPLIT_COUNTS = "split_counts"
BLOBS = "sample_blobs"


def split_counts_drift(*, dataset: Dataset) -> list[Drift]:
    """Each split whose stored sample count differs from a count of the samples (missing counts as zero)."""
    with read_snapshot():
        stored = Dataset.objects.filter(pk=dataset.pk).values_list("split_counts", flat=True).get()
        actual = sample_split_counts(dataset_id=dataset.id)
    return [Drift(SPLIT_COUNTS, dataset.id, f"split {split}", stored=stored.get(split, 0), actual=actual.get(split, 0),
                  repairable=True)
            for split in sorted(set(stored) | set(actual)) if stored.get(split, 0) != actual.get(split, 0)]


def split_counts_repair(*, dataset: Dataset, drifts: list[Drift]) -> None:
    dataset_recount_splits(dataset=dataset)


def blobs_drift(*, dataset: Dataset) -> list[Drift]:
    """Each original or thumbnail a sample names that the storage does not hold (nothing to rebuild it from
    but the source files: re-import them)."""
    drifts = []
    rows = Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", "external_id", "original",
                                                                            "thumbnail")
    for sample_id, external_id, *keys in rows.iterator(chunk_size=10_000):
        for kind, key in zip(("original", "thumbnail"), keys, strict=True):
            if not default_storage.exists(key):
                drifts.append(Drift(BLOBS, dataset.id, f"sample {external_id!r} ({sample_id}) {kind}", stored=key,
                                    actual="missing", repairable=False, ref=sample_id))
    return drifts
