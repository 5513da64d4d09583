"""Reads of labeling functions: their materialized votes as arrays, and the per-LF summary."""

import numpy as np
from django.db.models import QuerySet

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import locate
from imagestudio.datasets.models import Sample

from . import metrics
from .models import LabelingFunction, LFVote


def lf_list(*, dataset, label_class=None, active: bool | None = None) -> QuerySet:
    """The dataset's LFs, oldest first; optionally one class's, or only (in)active ones."""
    lfs = LabelingFunction.objects.filter(dataset=dataset).select_related("label_class", "author").order_by("id")
    if label_class is not None:
        lfs = lfs.filter(label_class=label_class)
    if active is not None:
        lfs = lfs.filter(active=active)
    return lfs


def vote_array(lf, ids):
    """The LF's materialized votes aligned to `ids` (ascending): int8, 1 / -1 / 0."""
    votes = np.zeros(len(ids), dtype=np.int8)
    for blob, value in ((lf.votes_present, metrics.PRESENT), (lf.votes_absent, metrics.ABSENT)):
        where, hit = locate(ids, np.frombuffer(bytes(blob), dtype=np.int64))
        votes[where[hit]] = value
    return votes


def lf_summary(*, dataset, split=None, label_class=None, active_only=False):
    """Per LF on a split: polarity, coverage, overlaps and conflicts with the other LFs of its class,
    and precision against ground truth with its Wilson interval (snorkel's LFAnalysis, per class)."""
    lfs = LabelingFunction.objects.filter(dataset=dataset).select_related("label_class").order_by("id")
    if label_class is not None:
        lfs = lfs.filter(label_class=label_class)
    if active_only:
        lfs = lfs.filter(active=True)
    samples = Sample.objects.filter(dataset=dataset)
    if split:
        samples = samples.filter(split=split)
    ids = np.fromiter(samples.order_by("id").values_list("id", flat=True), dtype=np.int64)
    by_class = {}
    for lf in lfs:
        by_class.setdefault(lf.label_class, []).append(lf)
    rows = []
    for cls, members in by_class.items():
        matrix = np.stack([vote_array(lf, ids) for lf in members]) if members else np.zeros((0, len(ids)))
        truth = ground_truth_for(dataset=dataset, label_class=cls, sample_ids=ids)
        voted = matrix != 0
        for k, lf in enumerate(members):
            mine, others = voted[k], np.delete(voted, k, axis=0)
            other_present = (np.delete(matrix, k, axis=0) == metrics.PRESENT).any(axis=0)
            other_absent = (np.delete(matrix, k, axis=0) == metrics.ABSENT).any(axis=0)
            conflict = mine & (((matrix[k] == metrics.PRESENT) & other_absent)
                               | ((matrix[k] == metrics.ABSENT) & other_present))
            labeled = mine & (truth != 0)
            correct = labeled & (truth == matrix[k])
            rows.append({
                "lf": lf.id, "name": lf.name, "label_class": cls.name, "type": lf.type, "active": lf.active,
                "polarity": [word for value, word in ((1, "PRESENT"), (-1, "ABSENT")) if (matrix[k] == value).any()],
                "coverage": metrics.rate(mine.sum(), len(ids)),
                "overlaps": metrics.rate((mine & others.any(axis=0)).sum(), len(ids)),
                "conflicts": metrics.rate(conflict.sum(), len(ids)),
                "precision": metrics.rate(correct.sum(), labeled.sum()),
                "votes": {"present": int((matrix[k] == 1).sum()), "absent": int((matrix[k] == -1).sum())},
            })
    return {"split": split, "samples": int(len(ids)), "lfs": rows}


def sample_votes(*, sample):
    """The non-abstain votes a sample received, by LF."""
    return LFVote.objects.filter(sample=sample).select_related("lf__label_class").order_by("lf_id")
