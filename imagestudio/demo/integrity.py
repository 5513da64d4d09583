"""Every integrity check of the domains, run over datasets: what drifted, what a repair mended, what is left.
The check_integrity command prints this; tests call it directly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from imagestudio.annotations.integrity import counts_drift, counts_repair
from imagestudio.common.integrity import Drift
from imagestudio.datasets.integrity import blobs_drift, split_counts_drift, split_counts_repair
from imagestudio.datasets.models import Dataset
from imagestudio.labeling.integrity import lf_votes_drift, lf_votes_repair
from imagestudio.training.integrity import artifacts_drift


@dataclass(frozen=True)
class Check:
    name: str
    find: Callable[..., list[Drift]]  # (*, dataset) -> drifts
    repair: Callable[..., None] | None = None  # (*, dataset, drifts): recompute from the source


CHECKS = (
    Check("ground-truth counters", counts_drift, counts_repair),
    Check("split counts", split_counts_drift, split_counts_repair),
    Check("LF votes", lf_votes_drift, lf_votes_repair),
    Check("sample blobs", blobs_drift),
    Check("artifacts", artifacts_drift),
)


@dataclass
class IntegrityReport:
    found: list[Drift] = field(default_factory=list)  # before any repair
    remaining: list[Drift] = field(default_factory=list)  # after the repairs (all of `found` without --repair)

    @property
    def clean(self) -> bool:
        return not self.remaining


def integrity_check(*, datasets: Iterable[Dataset], repair: bool = False) -> IntegrityReport:
    """Run every check on each dataset; with `repair`, repair what drifted and check those again."""
    report = IntegrityReport()
    for dataset in datasets:
        for check in CHECKS:
            drifts = check.find(dataset=dataset)
            report.found += drifts
            if repair and check.repair and any(drift.repairable for drift in drifts):
                check.repair(dataset=dataset, drifts=drifts)
                drifts = check.find(dataset=dataset)
            report.remaining += drifts
    return report
