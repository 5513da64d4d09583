"""The dedupe decision for one batch of an import job. Pure (no Django): the caller says what the dataset
already holds for the batch's hashes and external ids, and stores what the decision says.

Each item gets exactly one outcome: created; resumed (stored by an earlier attempt of this same job, so counted
as created); a duplicate of the sample holding the same image; refused (with the reason). A duplicate whose
split, metadata or ground truth differ from its twin's is a conflict, settled by the DuplicatePolicy.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ..manifest import metadata_size_problem


class Outcome(StrEnum):
    CREATED = "created"
    RESUMED = "resumed"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


class DuplicatePolicy(StrEnum):
    KEEP_FIRST = "keep_first"  # keep the first (or stored) sample as it is; report the conflict
    MERGE = "merge"  # add the duplicate's metadata keys and labels to its twin when no value contradicts
    REFUSE = "refuse"  # refuse a conflicting duplicate, with the differences as the reason


@dataclass(frozen=True)
class Candidate:
    """A validated file of the batch."""

    name: str
    sha256: str
    external_id: str
    split: str = "train"
    metadata: Mapping = field(default_factory=dict)
    ground_truth: Mapping = field(default_factory=dict)  # class name -> PRESENT / ABSENT


@dataclass(frozen=True)
class StoredTwin:
    """The sample the dataset already holds for a hash; its ground truth may hold ABSTAIN for a cleared label."""

    sample_id: int
    external_id: str
    by_this_job: bool
    split: str = "train"
    metadata: Mapping = field(default_factory=dict)
    ground_truth: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    sample_id: int | None = None  # resumed: the stored sample; duplicate: its twin's once stored
    reason: str = ""
    conflict: str = ""  # how a duplicate differs from its twin, when it does and was not merged
    merged: tuple[str, ...] = ()  # what a merged duplicate added to its twin


@dataclass
class Additions:
    """Metadata keys and labels to add to the sample with this hash (merge policy)."""

    metadata: dict = field(default_factory=dict)
    ground_truth: dict = field(default_factory=dict)


@dataclass
class BatchDecision:
    decisions: list[Decision]
    merges: dict[str, Additions]  # sha256 -> what to add to that sample (it may be created by this batch)


@dataclass
class JobMemory:
    """What earlier batches of this run created: hash -> first file name, and the external ids they took."""

    first_names: dict[str, str] = field(default_factory=dict)
    external_ids: set[str] = field(default_factory=set)

    def remember(self, candidate: Candidate) -> None:
        self.first_names.setdefault(candidate.sha256, candidate.name)
        self.external_ids.add(candidate.external_id)


@dataclass
class _Twin:
    """The current state of the sample a duplicate is compared with (merges of this batch included)."""

    sample_id: int | None
    split: str
    metadata: dict
    ground_truth: dict


def decide(candidates: Sequence[Candidate], *, stored: Mapping[str, StoredTwin], taken_external_ids: set[str],
           memory: JobMemory, policy: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST) -> BatchDecision:
    """One decision per candidate, in order. `stored`: the dataset's samples for the batch's hashes;
    `taken_external_ids`: the batch's external ids some stored sample already uses."""
    batch = JobMemory()
    twins: dict[str, _Twin] = {}
    result = BatchDecision([], {})
    for candidate in candidates:
        decision = _decide_one(candidate, stored.get(candidate.sha256), taken_external_ids, memory, batch, twins,
                               policy, result.merges)
        if decision.outcome in (Outcome.CREATED, Outcome.RESUMED):
            batch.remember(candidate)
        result.decisions.append(decision)
    return result


def _of_stored(twin: StoredTwin) -> _Twin:
    return _Twin(twin.sample_id, twin.split, dict(twin.metadata), dict(twin.ground_truth))


def _decide_one(candidate, stored_twin, taken_external_ids, memory, batch, twins, policy, merges):
    sha = candidate.sha256
    first = batch.first_names.get(sha) or memory.first_names.get(sha)
    if (first is None and stored_twin is not None and stored_twin.by_this_job
            and stored_twin.external_id == candidate.external_id):
        twins[sha] = _of_stored(stored_twin)
        return Decision(Outcome.RESUMED, stored_twin.sample_id)
    if sha not in twins and stored_twin is not None:
        twins[sha] = _of_stored(stored_twin)
    if sha in twins:
        reason = f"the same image as {first} in this import" if first else "the same image is already in the dataset"
        return _duplicate(candidate, twins[sha], reason, policy, merges)
    external_id = candidate.external_id
    if external_id in taken_external_ids or external_id in memory.external_ids or external_id in batch.external_ids:
        return Decision(Outcome.REFUSED, reason=f"external_id {external_id!r} is already used by another image")
    twins[sha] = _Twin(None, candidate.split, dict(candidate.metadata), dict(candidate.ground_truth))
    return Decision(Outcome.CREATED)


def _duplicate(candidate, twin, reason, policy, merges):
    additions, clashes, lacking = _differences(twin, candidate)
    if not clashes and not lacking:
        return Decision(Outcome.DUPLICATE, twin.sample_id, reason)
    if policy is DuplicatePolicy.MERGE and (too_large := metadata_size_problem({**twin.metadata, **additions.metadata})):
        clashes = [f"merged, the kept sample's {too_large}"]
    if policy is DuplicatePolicy.MERGE and not clashes:
        twin.metadata.update(additions.metadata)
        twin.ground_truth.update(additions.ground_truth)
        merged = merges.setdefault(candidate.sha256, Additions())
        merged.metadata.update(additions.metadata)
        merged.ground_truth.update(additions.ground_truth)
        return Decision(Outcome.DUPLICATE, twin.sample_id, reason, merged=tuple(lacking))
    conflict = "; ".join(clashes + [f"{what} is not on the kept sample" for what in lacking])
    if policy is DuplicatePolicy.REFUSE:
        return Decision(Outcome.REFUSED, twin.sample_id, f"{reason}, but it differs: {conflict}", conflict)
    return Decision(Outcome.DUPLICATE, twin.sample_id, reason, conflict)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _differences(twin: _Twin, candidate: Candidate) -> tuple[Additions, list[str], list[str]]:
    """What the candidate would add to its twin, what contradicts it (texts) and what the twin lacks (names)."""
    additions, clashes, lacking = Additions(), [], []
    if candidate.split != twin.split:
        clashes.append(f"split {candidate.split!r} here, {twin.split!r} kept")
    for kind, ours, theirs, added in (("metadata", candidate.metadata, twin.metadata, additions.metadata),
                                      ("ground truth", candidate.ground_truth, twin.ground_truth,
                                       additions.ground_truth)):
        for key, value in ours.items():
            if key not in theirs:
                added[key] = value
                lacking.append(f"{kind} {key!r}")
            elif theirs[key] != value:
                clashes.append(f"{kind} {key!r}: {_short(value)} here, {_short(theirs[key])} kept")
    return additions, clashes, lacking


def lost_to_concurrent_import(twin: StoredTwin | None) -> Decision:
    """A candidate decided CREATED whose row another import stored first (same image or same external id)."""
    if twin is not None:
        return Decision(Outcome.DUPLICATE, twin.sample_id, "the same image was stored meanwhile by another import")
    return Decision(Outcome.REFUSED, reason="its external_id was taken meanwhile by another import")
