"""Reads of ground truth and its history."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from imagestudio.common.arrays import aligned
from imagestudio.common.cache import VersionedLRU
from imagestudio.datasets.selectors import labels_version, samples_version

from .models import LABEL_VALUES, Annotation, AnnotationEvent, GroundTruthCount, GroundTruthValue

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from imagestudio.datasets.models import Dataset, LabelClass

# A class's labels as arrays, valid until its labels change (_labels_state).
_ground_truth = VersionedLRU("ground truth", max_entries=64)
# A split's labels digest, valid until the dataset's labels or samples change.
_digests = VersionedLRU("ground truth digests", max_entries=256)


def _narrow(queryset, *, sample_id=None, label_class=None, **exact):
    if sample_id is not None:
        queryset = queryset.filter(sample_id=sample_id)
    if label_class is not None:
        queryset = queryset.filter(label_class=label_class)
    return queryset.filter(**{name: value for name, value in exact.items() if value is not None})


def annotation_list(*, dataset: Dataset, sample_id: int | None = None, label_class: LabelClass | None = None,
                    value: str | None = None) -> QuerySet[Annotation]:
    queryset = Annotation.objects.filter(sample__dataset=dataset).select_related("label_class", "updated_by")
    return _narrow(queryset, sample_id=sample_id, label_class=label_class, value=value).order_by("id")


def annotation_history(*, dataset: Dataset, sample_id: int | None = None, label_class: LabelClass | None = None,
                       username: str | None = None, source: str | None = None,
                       batch: uuid.UUID | None = None) -> QuerySet[AnnotationEvent]:
    """Changes newest first; `username` narrows to one author's changes (none for a name that made none)."""
    queryset = AnnotationEvent.objects.filter(dataset=dataset).select_related("label_class", "user")
    if username is not None:
        queryset = queryset.filter(user__username=username)
    return _narrow(queryset, sample_id=sample_id, label_class=label_class, source=source,
                   batch=batch).order_by("-id")


def _labels_of(label_class):
    rows = Annotation.objects.filter(label_class=label_class, value__in=LABEL_VALUES).order_by("sample_id")
    pairs = list(rows.values_list("sample_id", "value"))
    labeled_ids = np.array([p[0] for p in pairs], dtype=np.int64)
    labels = np.array([1 if p[1] == GroundTruthValue.PRESENT else -1 for p in pairs], dtype=np.int8)
    return labeled_ids, labels


def _labels_state(dataset, class_id=None):
    """A key that changes with every committed change of the labels (of one class): the sum of their counters'
    versions, which every label write grows on commit, in whatever order writers commit; and the dataset's
    `labels_version`, which a class delete or a counter rebuild grows."""
    counters = GroundTruthCount.objects.filter(label_class__dataset=dataset)
    if class_id is not None:
        counters = counters.filter(label_class_id=class_id)
    return labels_version(dataset=dataset), counters.aggregate(total=Sum("version"))["total"] or 0


def ground_truth_for(*, dataset: Dataset, label_class: LabelClass, sample_ids: np.ndarray) -> np.ndarray:
    """Ground truth of a class aligned to `sample_ids` (ascending): int8, 1 PRESENT, -1 ABSENT, 0 unlabeled."""
    labeled_ids, labels = _ground_truth.get(label_class.pk, _labels_state(dataset, class_id=label_class.pk),
                                            lambda: _labels_of(label_class))
    return aligned(sample_ids, labeled_ids, labels)


def ground_truth_prefetch(*, with_history: bool = False) -> Prefetch:
    """A sample's labels for `sample_page` / `sample_detail`: PRESENT / ABSENT only, or every annotation with
    who changed it last (the image view)."""
    if with_history:
        return Prefetch("annotations", queryset=Annotation.objects.select_related("label_class", "updated_by")
                        .order_by("label_class_id"))
    return Prefetch("annotations", queryset=Annotation.objects.filter(value__in=LABEL_VALUES)
                    .select_related("label_class").order_by("label_class_id"))


def ground_truth_digest(*, dataset: Dataset, split: str, class_ids: Sequence[int] | None = None) -> str:
    """A sha256 of the split's labels (sample, class, value) of `class_ids` (None: every class): equal exactly when
    those labels are. Read once per state of its inputs (a staleness check of every training set and model reads it
    per request): the labels' version, and the samples' (a split move)."""
    classes = None if class_ids is None else tuple(sorted(set(class_ids)))
    version = (_labels_state(dataset), samples_version(dataset=dataset))
    return _digests.get((dataset.pk, split, classes), version, lambda: _digest_of(dataset, split, classes))


def _digest_of(dataset, split, class_ids=None):
    rows = Annotation.objects.filter(sample__dataset=dataset, sample__split=split, value__in=LABEL_VALUES)
    if class_ids is not None:
        rows = rows.filter(label_class_id__in=class_ids)
    digest = hashlib.sha256()
    for sample_id, class_id, value in (rows.order_by("sample_id", "label_class_id")
                                       .values_list("sample_id", "label_class_id", "value").iterator(chunk_size=20_000)):
        digest.update(f"{sample_id},{class_id},{value};".encode())
    return digest.hexdigest()


def counts_recount(*, dataset: Dataset) -> dict[tuple[int, str], tuple[int, int]]:
    """{(class id, split): (present, absent)} counted from the annotations."""
    rows = (Annotation.objects.filter(label_class__dataset=dataset, value__in=LABEL_VALUES)
            .values_list("label_class_id", "sample__split")
            .annotate(present=Count("id", filter=Q(value=GroundTruthValue.PRESENT)),
                      absent=Count("id", filter=Q(value=GroundTruthValue.ABSENT))).order_by())
    return {(class_id, split): (present, absent) for class_id, split, present, absent in rows}
