"""LF numbers checked against independent computations (scikit-learn, brute force, statsmodels' formula)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score

from imagestudio.common.arrays import top_k
from imagestudio.labeling.metrics import (
    conflicted,
    covered,
    histogram,
    lf_vote_stats,
    suggest_thresholds,
    vote_quality,
    votes_from_scores,
    wilson_interval,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    n = 2000
    truth = rng.random(n) < 0.3
    scores = np.where(truth, rng.normal(0.6, 0.15, n), rng.normal(0.3, 0.15, n)).astype(np.float32)
    gt = np.where(rng.random(n) < 0.4, np.where(truth, 1, -1), 0).astype(np.int8)
    return scores, gt


def test_votes_two_sided_one_sided_and_inverted():
    scores = np.array([0.1, 0.3, 0.5, 0.7, 0.9, np.nan])
    assert votes_from_scores(scores, 0.3, 0.7).tolist() == [-1, -1, 0, 1, 1, 0]
    assert votes_from_scores(scores, None, 0.7).tolist() == [0, 0, 0, 1, 1, 0]
    assert votes_from_scores(scores, 0.3, None).tolist() == [-1, -1, 0, 0, 0, 0]
    assert votes_from_scores(scores, 0.3, 0.7, invert=True).tolist() == [1, 1, 0, -1, -1, 0]


def test_precision_recall_match_sklearn(data):
    scores, gt = data
    votes = votes_from_scores(scores, 0.35, 0.55)
    quality = vote_quality(votes, gt)
    for name, side in (("present", 1), ("absent", -1)):
        voted = (votes == side) & (gt != 0)
        expected_precision = precision_score(gt[voted] == side, np.ones(voted.sum(), bool))
        labeled = gt != 0
        expected_recall = recall_score(gt[labeled] == side, votes[labeled] == side)
        assert quality[name]["precision"]["value"] == pytest.approx(expected_precision)
        assert quality[name]["recall"]["value"] == pytest.approx(expected_recall)
    assert quality["coverage"]["value"] == pytest.approx((votes != 0).mean())
    assert sum(quality["votes"].values()) == len(votes)


def test_rates_without_ground_truth_are_null_not_errors():
    quality = vote_quality(np.array([1, 0, -1], np.int8), np.zeros(3, np.int8))
    assert quality["present"]["precision"] == {"value": None, "successes": 0, "trials": 0, "interval": None}
    assert quality["labeled"] == 0


def brute_force_lf_stats(votes, truth, counted):
    """The per-LF numbers counted sample by sample, LF by LF (overlaps and conflicts with the counted others)."""
    n, m = votes.shape
    rows = []
    for k in range(m):
        counts = dict.fromkeys(("covered", "overlap", "conflict", "labeled", "correct"), 0)
        for i in range(n):
            mine, others = votes[i, k], [votes[i, j] for j in range(m) if j != k and counted[j]]
            if mine == 0:
                continue
            counts["covered"] += 1
            counts["overlap"] += any(v != 0 for v in others)
            counts["conflict"] += any(v == -mine for v in others)
            if truth[i] != 0:
                counts["labeled"] += 1
                counts["correct"] += mine == truth[i]
        rows.append(counts)
    return rows


@pytest.mark.parametrize("lf_count", [1, 2, 5])
@pytest.mark.parametrize("some_inactive", [False, True])
def test_lf_vote_stats_match_a_brute_force_count(lf_count, some_inactive):
    rng = np.random.default_rng(lf_count)
    n = 300
    votes = rng.choice(np.array([-1, 0, 1], np.int8), size=(n, lf_count), p=[0.2, 0.6, 0.2])
    votes[:, 0] = np.where(votes[:, 0] == -1, 0, votes[:, 0])  # a one-sided LF: PRESENT only
    truth = rng.choice(np.array([-1, 0, 1], np.int8), size=n, p=[0.3, 0.4, 0.3])
    counted = np.arange(lf_count) % 2 == 0 if some_inactive else np.ones(lf_count, dtype=bool)
    stats = lf_vote_stats(votes, truth, counted=counted if some_inactive else None)
    expected = brute_force_lf_stats(votes, truth, counted)
    assert len(stats) == lf_count
    for k, (row, counts) in enumerate(zip(stats, expected, strict=True)):
        assert (row["coverage"]["successes"], row["coverage"]["trials"]) == (counts["covered"], n)
        assert row["overlaps"]["successes"] == counts["overlap"]
        assert row["conflicts"]["successes"] == counts["conflict"]
        assert (row["precision"]["successes"], row["precision"]["trials"]) == (counts["correct"], counts["labeled"])
        assert row["votes"] == {"present": int((votes[:, k] == 1).sum()), "absent": int((votes[:, k] == -1).sum())}
        assert row["polarity"] == (["PRESENT"] if k == 0 else ["PRESENT", "ABSENT"])
    if lf_count == 1:
        assert stats[0]["overlaps"]["successes"] == stats[0]["conflicts"]["successes"] == 0


def test_class_coverage_and_conflicts_per_sample():
    votes = np.array([[0, 0], [1, 0], [1, -1], [-1, -1], [0, 1]], np.int8)
    assert covered(votes).tolist() == [False, True, True, True, True]
    assert conflicted(votes).tolist() == [False, False, True, False, False]
    assert covered(votes[:, :0]).tolist() == conflicted(votes[:, :0]).tolist() == [False] * 5


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


@given(st.integers(1, 10**6).flatmap(lambda trials: st.tuples(st.integers(0, trials), st.just(trials))))
def test_wilson_bounds_are_exact_at_the_ends_and_hold_the_rate(counts):
    successes, trials = counts
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0
    assert (low == 0.0) == (successes == 0) and (high == 1.0) == (successes == trials)


def test_histogram_counts_add_up(data):
    scores, gt = data
    result = histogram(scores, gt, bins=20)
    assert len(result["edges"]) == 21
    assert sum(result["counts"]["present"]) == (gt == 1).sum()
    assert sum(result["counts"]["absent"]) == (gt == -1).sum()
    assert sum(result["counts"]["unlabeled"]) == (gt == 0).sum()
    single = histogram(np.ones(4), np.zeros(4, np.int8), bins=4)
    assert sum(single["counts"]["unlabeled"]) == 4


def test_suggested_high_threshold_is_the_brute_force_best_f1(data):
    scores, gt = data
    labeled = gt != 0
    best = max((f1_score(gt[labeled] == 1, scores[labeled] >= t), t) for t in np.unique(scores[labeled]))
    suggestion = suggest_thresholds(scores, gt)["high"]["best_f1"]
    assert suggestion["f1"] == pytest.approx(best[0])
    assert f1_score(gt[labeled] == 1, scores[labeled] >= suggestion["threshold"]) == pytest.approx(best[0])


def test_recall_at_min_precision_holds_the_precision(data):
    scores, gt = data
    for invert in (False, True):
        suggestions = suggest_thresholds(scores, gt, invert=invert, min_precision=0.8)
        for name in ("high", "low"):
            pick = suggestions[name]["best_recall_at_precision"]
            if pick is None:
                continue
            votes = votes_from_scores(scores, pick["threshold"] if name == "low" else None,
                                      pick["threshold"] if name == "high" else None, invert=invert)
            side = votes[votes != 0][0]
            labeled = (votes == side) & (gt != 0)
            assert (gt[labeled] == side).mean() >= 0.8 - 1e-9
            assert (gt[labeled] == side).mean() == pytest.approx(pick["precision"])


def test_suggestions_without_positives():
    result = suggest_thresholds(np.array([0.1, 0.2]), np.array([-1, -1], np.int8))
    assert result["high"] == {"best_f1": None, "best_recall_at_precision": None}
    assert result["low"]["best_f1"]["precision"] == 1.0


def test_top_k_orders_and_skips_nan():
    scores = np.array([0.2, np.nan, 0.9, 0.5, 0.9])
    assert top_k(scores, 3).tolist() == [2, 4, 3]
    assert top_k(scores, 2, descending=False).tolist() == [0, 3]
    assert top_k(np.array([np.nan]), 5).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-2, 2, width=32), min_size=1, max_size=50), st.floats(-2, 2), st.floats(-2, 2),
       st.booleans())
def test_float32_scores_vote_as_their_exact_float64_values(values, low, high, invert):
    """The scan's float32 scores are compared without widening them: the thresholds become the float32 bounds
    that select exactly what the float64 comparison does, even for a threshold between two float32 values."""
    scores = np.array(values, dtype=np.float32)
    nudged = [np.nextafter(np.float64(v), np.inf) for v in values[:2]]  # thresholds just above a score
    for lo, hi in ((min(low, high), max(low, high)), (nudged[0], nudged[-1] + 1)):
        expected = votes_from_scores(scores.astype(np.float64), lo, hi, invert)
        assert np.array_equal(votes_from_scores(scores, lo, hi, invert), expected)


def test_no_suggested_cut_votes_on_every_labeled_sample():
    from imagestudio.labeling.metrics import suggest_thresholds

    rng = np.random.default_rng(3)
    truth = np.where(rng.random(300) < 0.4, 1, -1)
    scores = rng.random(300)  # a rule that tells nothing apart: the best F1 is "everything PRESENT"
    suggested = suggest_thresholds(scores, truth, min_precision=0.3)
    for side in ("high", "low"):
        for kind in ("best_f1", "best_recall_at_precision"):
            cut = suggested[side][kind]
            assert cut is None or not (side == "high" and cut["threshold"] <= scores.min()), (side, kind, cut)
            assert cut is None or not (side == "low" and cut["threshold"] >= scores.max()), (side, kind, cut)
