"""Integrity of materialized LF votes: every LF's rule applied again (as lf_materialize applies it) against
the stored vote blobs and the LFVote rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.common.integrity import Drift
from imagestudio.common.transactions import read_snapshot

from . import metrics
from .models import LabelingFunction, LFVote
from .services import lf_rematerialize, lf_rule, rule_scores

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset

CHECK = "lf_votes"
SHOWN = 5  # differing sample ids named per drift


def _votes(present, absent):
    """{sample id: +1 / -1} of two id arrays."""
    return {**dict.fromkeys(present.tolist(), metrics.PRESENT), **dict.fromkeys(absent.tolist(), metrics.ABSENT)}


def _stored_votes(lf):
    """(votes of the blobs, votes of the rows), read from one snapshot."""
    with read_snapshot():
        blobs = LabelingFunction.objects.filter(pk=lf.pk).values_list("votes_present", "votes_absent").get()
        rows = dict(LFVote.objects.filter(lf_id=lf.id).values_list("sample_id", "vote").iterator(chunk_size=50_000))
    present, absent = (np.frombuffer(bytes(blob), dtype=np.int64) for blob in blobs)
    return _votes(present, absent), rows


def _summary(votes):
    values = list(votes.values())
    return f"{values.count(metrics.PRESENT)} present, {values.count(metrics.ABSENT)} absent"


def _compare(lf, where, stored, actual):
    differing = sorted(key for key in stored.keys() | actual.keys() if stored.get(key) != actual.get(key))
    if not differing:
        return []
    return [Drift(CHECK, lf.dataset_id, f"LF {lf.name!r} ({lf.id}) {where}: {len(differing)} samples differ, "
                  f"e.g. {differing[:SHOWN]}", stored=_summary(stored), actual=_summary(actual), repairable=True,
                  ref=lf.id)]


def lf_votes_drift(*, dataset: Dataset) -> list[Drift]:
    drifts = []
    for lf in LabelingFunction.objects.filter(dataset=dataset).select_related("label_class", "dataset").order_by("id"):
        try:
            ids, scores, _ = rule_scores(dataset=lf.dataset, rule=lf_rule(lf))
        except (ValidationFailed, Conflict) as exc:  # e.g. no embeddings for a similarity LF any more
            drifts.append(Drift(CHECK, dataset.id, f"LF {lf.name!r} ({lf.id})", stored="votes",
                                actual=f"not scorable: {exc.message}", repairable=False, ref=lf.id))
            continue
        votes = metrics.votes_from_scores(scores, lf.low, lf.high, lf.invert)
        actual = _votes(ids[votes == metrics.PRESENT], ids[votes == metrics.ABSENT])
        blobs, rows = _stored_votes(lf)
        drifts += _compare(lf, "vote blobs", blobs, actual) + _compare(lf, "vote rows", rows, actual)
    return drifts


def lf_votes_repair(*, dataset: Dataset, drifts: list[Drift]) -> None:
    """Rewrite the votes of each LF that drifted."""
    lf_ids = sorted({drift.ref for drift in drifts if drift.repairable})
    for lf in LabelingFunction.objects.filter(dataset=dataset, id__in=lf_ids).select_related("label_class", "dataset"):
        lf_rematerialize(lf=lf)
