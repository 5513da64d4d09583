"""Aligning arrays keyed by ascending sample ids."""

import numpy as np

from imagestudio.common.arrays import consecutive_runs, locate


def test_consecutive_runs_follow_the_reference_order_not_the_integers():
    reference = np.array([3, 5, 6, 9, 10, 11, 20])
    lows, highs = consecutive_runs(reference, np.array([3, 5, 9, 10, 20]))
    # 3 and 5 are neighbours in the reference although not consecutive integers; 6 breaks the run
    assert lows.tolist() == [3, 9, 20] and highs.tolist() == [5, 10, 20]
    assert [x.tolist() for x in consecutive_runs(reference, reference)] == [[3], [20]]
    assert [x.tolist() for x in consecutive_runs(reference, np.array([], dtype=np.int64))] == [[], []]


def test_consecutive_runs_cover_exactly_the_subset_on_random_data():
    rng = np.random.default_rng(0)
    reference = np.unique(rng.integers(0, 10_000, 3_000))
    subset = reference[rng.random(len(reference)) < 0.7]
    lows, highs = consecutive_runs(reference, subset)
    covered = np.zeros(len(reference), dtype=bool)
    for low, high in zip(lows, highs, strict=True):
        covered |= (reference >= low) & (reference <= high)
    assert np.array_equal(reference[covered], subset)
    assert (lows[1:] > highs[:-1]).all()


def test_locate_finds_positions_and_misses():
    where, found = locate(np.array([2, 4, 8]), np.array([4, 5, 8, 100]))
    assert found.tolist() == [True, False, True, False] and where[found].tolist() == [1, 2]
