"""What an integrity check reports: one stored value that disagrees with what it is derived from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Drift:
    check: str  # e.g. "ground_truth_counts"
    dataset_id: int
    subject: str  # what drifted, in words: "class 'cat' (3), split train"
    stored: Any
    actual: Any
    repairable: bool  # whether the check's repair recomputes it from its source
    ref: int | None = None  # id of the row that drifted (a class, an LF, a sample), where there is one

    def __str__(self) -> str:
        return f"dataset {self.dataset_id}: {self.check}: {self.subject}: stored {self.stored}, actual {self.actual}"
