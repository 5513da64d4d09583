"""Resamples: the active sample of a split, chosen with its ground truth in view (a cap on labeled samples, a
minimum per class)."""

import numpy as np
from django.db import transaction

from imagestudio.common.errors import ValidationFailed
from imagestudio.common.transactions import retry_transient
from imagestudio.datasets.models import Dataset, LabelClass, Resample, ResampleMember, Sample
from imagestudio.datasets.resampling import ResampleError, ResampleRequest, choose_sample, realized_counts

from .models import LABEL_VALUES, Annotation, GroundTruthValue


def _split_arrays(dataset, split, classes):
    """ids, labeled, present and absent matrices for one split, from two narrow queries."""
    ids = np.fromiter(
        Sample.objects.filter(dataset=dataset, split=split).order_by("id").values_list("id", flat=True),
        dtype=np.int64,
    )
    position = {int(sample_id): i for i, sample_id in enumerate(ids)}
    column = {c.id: k for k, c in enumerate(classes)}
    present = np.zeros((len(ids), len(classes)), dtype=bool)
    absent = np.zeros_like(present)
    rows = Annotation.objects.filter(sample__dataset=dataset, sample__split=split, value__in=LABEL_VALUES).values_list(
        "sample_id", "label_class_id", "value"
    )
    for sample_id, class_id, value in rows.iterator(chunk_size=10_000):
        if sample_id not in position or class_id not in column:  # moved in, or a class added, since the ids were read
            continue
        target = present if value == GroundTruthValue.PRESENT else absent
        target[position[sample_id], column[class_id]] = True
    labeled = present.any(axis=1) | absent.any(axis=1)
    return ids, labeled, present, absent


@retry_transient
def resample_create(*, dataset, user, split, sample_size, max_labeled=None, min_per_class=0, seed=0):
    """Choose and persist the active sample of a split (replacing the previous one)."""
    classes = list(LabelClass.objects.filter(dataset=dataset).order_by("id"))
    ids, labeled, present, absent = _split_arrays(dataset, split, classes)
    request = ResampleRequest(sample_size=sample_size, max_labeled=max_labeled, min_per_class=min_per_class,
                              seed=seed)
    try:
        chosen_ids = choose_sample(ids, labeled, present, request)
    except ResampleError as exc:
        raise ValidationFailed(str(exc), field="min_per_class") from None
    chosen = np.isin(ids, chosen_ids)
    realized = realized_counts(chosen, labeled, present, absent, [c.name for c in classes])
    realized["available"] = int(len(ids))
    with transaction.atomic():
        # The class names as they stand to the commit (a rename or delete waits; label writers do not), first, as
        # datasets/locks.py orders: the counts were drawn under the names read above.
        names = dict(LabelClass.objects.select_for_update(no_key=True).filter(dataset=dataset).order_by("id")
                     .values_list("id", "name"))
        realized["per_class"] = {names[c.id]: realized["per_class"][c.name] for c in classes if c.id in names}
        # One writer of a dataset's resamples at a time: two deleting and then inserting at once broke the one-per-
        # split constraint (a 500). NO KEY UPDATE leaves the foreign-key checks of rows naming the dataset alone.
        Dataset.objects.select_for_update(no_key=True).filter(pk=dataset.pk).exists()
        Resample.objects.filter(dataset=dataset, split=split).delete()
        resample = Resample.objects.create(
            dataset=dataset, split=split, sample_size=sample_size, max_labeled=max_labeled,
            min_per_class=min_per_class, seed=seed, realized=realized, created_by=user,
        )
        ResampleMember.objects.bulk_create(
            (ResampleMember(resample=resample, sample_id=int(i)) for i in chosen_ids), batch_size=10_000
        )
    return resample, chosen_ids


def resample_with_counts_now(resample):
    """The resample with `current`: realized_counts of its members still in its split against their ground truth
    now, `available` the split's samples now (`realized` says what the draw held; labels and splits move since)."""
    classes = list(LabelClass.objects.filter(dataset=resample.dataset_id).order_by("id"))
    ids, labeled, present, absent = _split_arrays(resample.dataset, resample.split, classes)
    members = np.fromiter(ResampleMember.objects.filter(resample=resample).values_list("sample_id", flat=True),
                          dtype=np.int64)
    counts = realized_counts(np.isin(ids, members), labeled, present, absent, [c.name for c in classes])
    resample.current = {**counts, "available": int(len(ids))}
    return resample


def resample_clear(*, dataset, split):
    return Resample.objects.filter(dataset=dataset, split=split).delete()[0] > 0


