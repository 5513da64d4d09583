"""Integrity of the ground-truth counters: the stored GroundTruthCount rows against a recount."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagestudio.common.integrity import Drift
from imagestudio.common.transactions import read_snapshot

from .models import GroundTruthCount
from .selectors import counts_recount
from .services import counts_rebuild

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset

CHECK = "ground_truth_counts"


def counts_drift(*, dataset: Dataset) -> list[Drift]:
    """Each (class, split) whose stored PRESENT / ABSENT counts differ from the annotations (a missing row
    counts as zero)."""
    with read_snapshot():  # counters and labels as of one moment, while writers go on
        stored = {(c.label_class_id, c.split): (c.present, c.absent)
                  for c in GroundTruthCount.objects.filter(label_class__dataset=dataset)}
        actual = counts_recount(dataset=dataset)
    names = dict(dataset.classes.values_list("id", "name"))
    drifts = []
    for class_id, split in sorted(set(stored) | set(actual)):
        before, after = stored.get((class_id, split), (0, 0)), actual.get((class_id, split), (0, 0))
        if before != after:
            drifts.append(Drift(CHECK, dataset.id, f"class {names.get(class_id)!r} ({class_id}), split {split}",
                                stored={"present": before[0], "absent": before[1]},
                                actual={"present": after[0], "absent": after[1]}, repairable=True, ref=class_id))
    return drifts


def counts_repair(*, dataset: Dataset, drifts: list[Drift]) -> None:
    counts_rebuild(dataset=dataset)
