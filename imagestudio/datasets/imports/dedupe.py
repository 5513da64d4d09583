"""The dedupe decision for one batch of an import job. Pure (no Django): the caller says what the dataset
already holds for the batch's hashes and external ids, and stores what the decision says.

Each item is exactly one of: created; resumed (stored by an earlier attempt of this same job, so counted as
created); a duplicate of the sample holding the same image; refused (with the reason).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    CREATED = "created"
    RESUMED = "resumed"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True)
class Candidate:
    """A validated file of the batch."""

    name: str
    sha256: str
    external_id: str


@dataclass(frozen=True)
class StoredTwin:
    """The sample the dataset already holds for a hash."""

    sample_id: int
    external_id: str
    by_this_job: bool


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    sample_id: int | None = None  # resumed: the stored sample; duplicate: its twin's when already stored
    reason: str = ""


@dataclass
class JobMemory:
    """What earlier batches of this run created: hash -> first file name, and the external ids they took."""

    first_names: dict[str, str] = field(default_factory=dict)
    external_ids: set[str] = field(default_factory=set)

    def remember(self, candidate: Candidate) -> None:
        self.first_names.setdefault(candidate.sha256, candidate.name)
        self.external_ids.add(candidate.external_id)


def decide(candidates: Sequence[Candidate], *, stored: Mapping[str, StoredTwin], taken_external_ids: set[str],
           memory: JobMemory) -> list[Decision]:
    """One decision per candidate, in order. `stored`: the dataset's samples for the batch's hashes;
    `taken_external_ids`: the batch's external ids some stored sample already uses."""
    batch = JobMemory()
    decisions = []
    for candidate in candidates:
        decision = _decide_one(candidate, stored.get(candidate.sha256), taken_external_ids, memory, batch)
        if decision.outcome in (Outcome.CREATED, Outcome.RESUMED):
            batch.remember(candidate)
        decisions.append(decision)
    return decisions


def _decide_one(candidate, twin, taken_external_ids, memory, batch):
    first = batch.first_names.get(candidate.sha256) or memory.first_names.get(candidate.sha256)
    if first is None and twin is not None and twin.by_this_job and twin.external_id == candidate.external_id:
        return Decision(Outcome.RESUMED, twin.sample_id)
    if first is not None:
        return Decision(Outcome.DUPLICATE, twin.sample_id if twin else None,
                        f"the same image as {first} in this import")
    if twin is not None:
        return Decision(Outcome.DUPLICATE, twin.sample_id, "the same image is already in the dataset")
    external_id = candidate.external_id
    if external_id in taken_external_ids or external_id in memory.external_ids or external_id in batch.external_ids:
        return Decision(Outcome.REFUSED, reason=f"external_id {external_id!r} is already used by another image")
    return Decision(Outcome.CREATED)


def lost_to_concurrent_import(twin: StoredTwin | None) -> Decision:
    """A candidate decided CREATED whose row another import stored first (same image or same external id)."""
    if twin is not None:
        return Decision(Outcome.DUPLICATE, twin.sample_id, "the same image was stored meanwhile by another import")
    return Decision(Outcome.REFUSED, reason="its external_id was taken meanwhile by another import")
