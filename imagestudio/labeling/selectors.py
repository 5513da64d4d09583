"""Reads of labeling functions: their materialized votes as arrays, and the per-LF summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from django.db.models import QuerySet

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import locate
from imagestudio.datasets.models import LabelClass, Sample

from . import metrics
from .models import LabelingFunction, LFVote

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset


def lf_list(*, dataset: Dataset, label_class: LabelClass | None = None, active: bool | None = None) -> QuerySet:
    """The dataset's LFs, oldest first; optionally one class's, or only (in)active ones."""
    lfs = LabelingFunction.objects.filter(dataset=dataset).select_related("label_class", "author").order_by("id")
    if label_class is not None:
        lfs = lfs.filter(label_class=label_class)
    if active is not None:
        lfs = lfs.filter(active=active)
    return lfs


def vote_array(lf: LabelingFunction, ids: np.ndarray) -> np.ndarray:
    """The LF's materialized votes aligned to `ids` (ascending): int8, 1 / -1 / 0."""
    votes = np.zeros(len(ids), dtype=np.int8)
    for blob, value in ((lf.votes_present, metrics.PRESENT), (lf.votes_absent, metrics.ABSENT)):
        where, hit = locate(ids, np.frombuffer(bytes(blob), dtype=np.int64))
        votes[where[hit]] = value
    return votes


def vote_matrix(lfs: Sequence[LabelingFunction], ids: np.ndarray) -> np.ndarray:
    """The LFs' votes on `ids` (ascending) as an (n samples x m LFs) int8 matrix; m may be 0."""
    if not lfs:
        return np.zeros((len(ids), 0), dtype=np.int8)
    return np.stack([vote_array(lf, ids) for lf in lfs], axis=1)


def lf_rows(lfs: Sequence[LabelingFunction], label_class: LabelClass, votes: np.ndarray,
            truth: np.ndarray) -> list[dict]:
    """The summary row of each LF of one class, from their vote matrix and the class's ground truth. Overlaps and
    conflicts are with the class's other active LFs: those the label model and the `lf_conflict` filter read."""
    stats = metrics.lf_vote_stats(votes, truth, counted=[lf.active for lf in lfs])
    return [{"lf": lf.id, "name": lf.name, "label_class": label_class.name, "type": lf.type, "active": lf.active,
             **row} for lf, row in zip(lfs, stats, strict=True)]


def lf_summary(*, dataset: Dataset, split: str | None = None, label_class: LabelClass | None = None,
               active_only: bool = False) -> dict:
    """Per LF on a split: polarity, coverage, overlaps and conflicts with the other active LFs of its class,
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
        truth = ground_truth_for(dataset=dataset, label_class=cls, sample_ids=ids)
        rows += lf_rows(members, cls, vote_matrix(members, ids), truth)
    return {"split": split, "samples": int(len(ids)), "lfs": rows}


def sample_votes(*, sample: Sample) -> QuerySet[LFVote]:
    """The non-abstain votes a sample received, by LF."""
    return LFVote.objects.filter(sample=sample).select_related("lf__label_class").order_by("lf_id")
