"""The pure dedupe decision of an import (imports.dedupe), over whole jobs simulated batch by batch."""

from hypothesis import given, settings
from hypothesis import strategies as st

from imagestudio.datasets.imports.dedupe import (
    Candidate,
    DuplicatePolicy,
    JobMemory,
    Outcome,
    StoredTwin,
    decide,
)

SPLITS = ("train", "valid")


class FakeDataset:
    """What the database would hold: sha256 -> (sample id, external id, job), and the rows of merges."""

    def __init__(self, preexisting):
        self.rows = {sha: (1000 + n, f"old-{sha}", "earlier job", {}) for n, sha in enumerate(preexisting)}
        self.next_id = 1

    def twins(self, batch, job):
        return {c.sha256: StoredTwin(pk, ext, owner == job, "train", metadata, {})
                for c in batch if c.sha256 in self.rows for pk, ext, owner, metadata in [self.rows[c.sha256]]}

    def run(self, items, *, job, batch_size, policy, stop_after=None):
        """Decide and 'store' batch by batch; returns [(candidate, decision, sample id)] in input order."""
        memory, outcome = JobMemory(), []
        for number, start in enumerate(range(0, len(items), batch_size)):
            if stop_after is not None and number == stop_after:
                break
            batch = items[start:start + batch_size]
            taken = {ext for _, ext, _, _ in self.rows.values()} & {c.external_id for c in batch}
            decided = decide(batch, stored=self.twins(batch, job), taken_external_ids=taken, memory=memory,
                             policy=policy)
            assert len(decided.decisions) == len(batch)
            for candidate, decision in zip(batch, decided.decisions, strict=True):
                if decision.outcome is Outcome.CREATED:
                    self.rows[candidate.sha256] = (self.next_id, candidate.external_id, job, dict(candidate.metadata))
                    self.next_id += 1
            for sha, additions in decided.merges.items():
                self.rows[sha][3].update(additions.metadata)
            for candidate, decision in zip(batch, decided.decisions, strict=True):
                sample_id = decision.sample_id or self.rows.get(candidate.sha256, (None,))[0]
                outcome.append((candidate, decision, sample_id))
                if decision.outcome in (Outcome.CREATED, Outcome.RESUMED):
                    memory.remember(candidate)
        return outcome


items_strategy = st.lists(
    st.tuples(st.integers(0, 12), st.sampled_from(SPLITS), st.dictionaries(st.sampled_from("ab"), st.integers(0, 2),
                                                                          max_size=2)),
    min_size=1, max_size=60,
).map(lambda rows: [Candidate(f"f{i}", f"sha{h}", f"f{i}", split, metadata)
                    for i, (h, split, metadata) in enumerate(rows)])


@settings(max_examples=200, deadline=None)
@given(items=items_strategy, preexisting=st.sets(st.integers(0, 12).map(lambda h: f"sha{h}"), max_size=4),
       batch_size=st.integers(1, 7), policy=st.sampled_from(list(DuplicatePolicy)))
def test_every_item_lands_in_one_bucket_and_duplicates_point_at_the_first_sample(items, preexisting, batch_size,
                                                                                 policy):
    dataset = FakeDataset(preexisting)
    before = dict(dataset.rows)
    outcome = dataset.run(items, job="this job", batch_size=batch_size, policy=policy)
    assert [c for c, _, _ in outcome] == items
    counts = {kind: sum(d.outcome is kind for _, d, _ in outcome) for kind in Outcome}
    assert sum(counts.values()) == len(items)
    new_hashes = {c.sha256 for c in items} - set(preexisting)
    assert counts[Outcome.CREATED] == len(new_hashes)
    assert counts[Outcome.RESUMED] == 0
    first_sample = {}
    for candidate, decision, sample_id in outcome:
        first_sample.setdefault(candidate.sha256, sample_id)
        if decision.outcome is Outcome.CREATED:
            assert candidate.sha256 in new_hashes and sample_id == dataset.rows[candidate.sha256][0]
        elif decision.outcome is Outcome.DUPLICATE:
            expected = before[candidate.sha256][0] if candidate.sha256 in before else first_sample[candidate.sha256]
            assert sample_id == expected
        else:
            assert decision.outcome is Outcome.REFUSED and policy is DuplicatePolicy.REFUSE and decision.conflict


@settings(max_examples=100, deadline=None)
@given(items=items_strategy, batch_size=st.integers(1, 7), stop_after=st.integers(0, 5))
def test_a_resumed_job_counts_each_new_hash_created_once(items, batch_size, stop_after):
    dataset = FakeDataset(preexisting=())
    dataset.run(items, job="this job", batch_size=batch_size, policy=DuplicatePolicy.KEEP_FIRST,
                stop_after=stop_after)
    stored_before = dict(dataset.rows)
    outcome = dataset.run(items, job="this job", batch_size=batch_size, policy=DuplicatePolicy.KEEP_FIRST)
    created = [d for _, d, _ in outcome if d.outcome in (Outcome.CREATED, Outcome.RESUMED)]
    assert len(created) == len({c.sha256 for c in items})
    assert sum(d.outcome is Outcome.RESUMED for d in created) == len(stored_before)
    assert sum(d.outcome is Outcome.DUPLICATE for _, d, _ in outcome) == len(items) - len(created)


def test_keep_first_reports_what_the_duplicate_would_lose():
    first = Candidate("a.png", "s", "a.png", "train", {"caption": "x"}, {"cat": "PRESENT"})
    twin = Candidate("b.png", "s", "b.png", "valid", {"caption": "y", "new": 1}, {"cat": "ABSENT"})
    decided = decide([first, twin], stored={}, taken_external_ids=set(), memory=JobMemory())
    conflict = decided.decisions[1].conflict
    assert "split 'valid' here, 'train' kept" in conflict and "metadata 'caption'" in conflict
    assert "ground truth 'cat'" in conflict and "metadata 'new' is not on the kept sample" in conflict
    assert decided.merges == {}


def test_merge_refuses_to_merge_over_a_cleared_label():
    stored = {"s": StoredTwin(7, "a.png", False, "train", {}, {"cat": "ABSTAIN"})}
    twin = Candidate("b.png", "s", "b.png", "train", {}, {"cat": "PRESENT"})
    decided = decide([twin], stored=stored, taken_external_ids=set(), memory=JobMemory(),
                     policy=DuplicatePolicy.MERGE)
    assert decided.decisions[0].conflict and decided.merges == {}


def test_merge_never_grows_a_sample_past_the_metadata_bounds():
    stored = {"s": StoredTwin(7, "a.png", False, "train", {f"k{i}": i for i in range(200)}, {})}
    fits = Candidate("b.png", "s", "b.png", "train", {f"n{i}": i for i in range(56)})
    too_many = Candidate("c.png", "s", "c.png", "train", {"one_more": 1})
    decided = decide([fits, too_many], stored=stored, taken_external_ids=set(), memory=JobMemory(),
                     policy=DuplicatePolicy.MERGE)
    assert not decided.decisions[0].conflict and len(decided.merges["s"].metadata) == 56
    assert "257 fields" in decided.decisions[1].conflict and "one_more" not in decided.merges["s"].metadata
