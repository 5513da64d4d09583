"""The preview's threshold sweep and suggestions, checked against the point figures (vote_quality) and numpy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagestudio.labeling.metrics import (
    bin_scores,
    histogram,
    suggest_thresholds,
    threshold_sweep,
    vote_quality,
    votes_from_scores,
)


@st.composite
def scored_samples(draw):
    """Scores with ties, edge hits and NaN (no score), and ground truth with unlabeled samples."""
    n = draw(st.integers(0, 60))
    grid = draw(st.sampled_from([None, "extreme", 4, 10]))  # few distinct values: scores land on the edges
    if grid is None:
        values = st.floats(-3, 3, allow_nan=False, width=32)
    elif grid == "extreme":  # ranges near float32's limits and among its subnormals
        values = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32),
                           st.floats(-2.0 ** -124, 2.0 ** -124, width=32))
    else:
        values = st.integers(0, grid).map(float)
    scores = np.array(draw(st.lists(st.one_of(values, st.just(float("nan"))) if draw(st.booleans()) else values,
                                    min_size=n, max_size=n)), dtype=np.float32)
    truth = np.array(draw(st.lists(st.sampled_from([1, -1, 0]), min_size=n, max_size=n)), dtype=np.int8)
    return scores, truth


def point_figures(scores, truth, low, high, invert):
    return vote_quality(votes_from_scores(scores, low, high, invert), truth)


@settings(max_examples=150, deadline=None)
@given(scored_samples(), st.integers(1, 12), st.booleans())
def test_sweep_agrees_with_the_point_figures_at_every_edge(data, bins, invert):
    scores, truth = data
    binned = bin_scores(scores, truth, bins)
    edges, sweep = binned.edges.tolist(), threshold_sweep(binned, invert=invert)
    for name, side in (("present", 1), ("absent", -1)):
        arrays = sweep[name]
        assert len(arrays["votes"]) == len(edges)
        for j, edge in enumerate(edges):
            # the rule of this side alone, with the edge as its threshold
            high_side = arrays["operator"] == ">="
            quality = point_figures(scores, truth, None if high_side else edge, edge if high_side else None, invert)
            assert arrays["votes"][j] == quality["votes"][name]
            assert arrays["coverage"][j] == quality["coverage"]["value"]
            precision, recall = quality[name]["precision"], quality[name]["recall"]
            assert (arrays["correct"][j], arrays["labeled"][j]) == (precision["successes"], precision["trials"])
            assert arrays["precision"][j] == precision["value"]
            assert arrays["recall"][j] == recall["value"]


def test_an_edge_sent_back_as_a_threshold_selects_what_the_sweep_counted():
    # float32(0.7) lies just below the float64 edge 0.7000000000000001: equal only after rounding the edge to float32
    scores, truth = np.array([0.0, 0.7, 1.0], np.float32), np.array([1, 1, -1], np.int8)
    binned = bin_scores(scores, truth, 10)
    edges, sweep = binned.edges.tolist(), threshold_sweep(binned)
    assert sweep["present"]["votes"][7] == point_figures(scores, truth, None, edges[7], False)["votes"]["present"] == 1


def test_sweep_operators_follow_invert():
    scores, truth = np.array([0.0, 1.0]), np.array([1, -1], np.int8)
    binned = bin_scores(scores, truth, 1)
    plain, inverted = threshold_sweep(binned), threshold_sweep(binned, invert=True)
    assert (plain["present"]["operator"], plain["absent"]["operator"]) == (">=", "<=")
    assert (inverted["present"]["operator"], inverted["absent"]["operator"]) == ("<=", ">=")
    assert plain["present"]["votes"] == [2, 1] and plain["absent"]["votes"] == [1, 2]
    assert inverted["present"]["precision"] == [1.0, 0.5] and inverted["present"]["recall"] == [1.0, 1.0]


@settings(max_examples=100, deadline=None)
@given(scored_samples(), st.integers(1, 12))
def test_histogram_counts_are_numpys(data, bins):
    scores, truth = data
    result = histogram(scores, truth, bins)
    finite = np.isfinite(scores)
    for name, side in (("present", 1), ("absent", -1), ("unlabeled", 0)):
        expected, _ = np.histogram(scores[finite & (truth == side)].astype(np.float64), bins=result["edges"])
        assert result["counts"][name] == expected.tolist()
    assert np.all(np.diff(result["edges"]) > 0)


@pytest.mark.parametrize("bins", [3, 7, 40, 199])
def test_scores_next_to_edges_fall_in_the_bins_the_edges_say(bins):
    """Bins come from arithmetic settled against the edges: scores on an edge and one ulp either side of it."""
    rng = np.random.default_rng(bins)
    low, high = sorted(rng.normal(0, 1, 2) * [1, 1e3])
    edges = np.linspace(low, high, bins + 1)
    scores = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), rng.uniform(low, high, 999)])
    scores = scores[(scores >= low) & (scores <= high)]
    truth = rng.choice(np.array([1, -1, 0], np.int8), len(scores))
    binned = bin_scores(scores, truth, bins)
    assert np.array_equal(binned.edges, edges)
    expected = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    row = np.select([truth == 1, truth == -1], [0, 1], 2)
    assert binned.per_bin.tolist() == [np.bincount(expected[row == k], minlength=bins).tolist() for k in range(3)]
    assert binned.per_edge.sum() == np.isin(scores, edges).sum()


@st.composite
def labeled_distributions(draw):
    """Two overlapping score distributions of any balance and shape, ties included."""
    n = draw(st.integers(1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    present = rng.random(n) < draw(st.floats(0, 1))
    gap, spread = draw(st.floats(-1, 1)), draw(st.floats(0.01, 2))
    scores = np.where(present, rng.normal(gap, spread, n), rng.normal(0, spread, n))
    scores = np.round(scores, draw(st.integers(0, 3))).astype(np.float32)
    truth = np.where(rng.random(n) < draw(st.floats(0.2, 1)), np.where(present, 1, -1), 0).astype(np.int8)
    return scores, truth


@settings(max_examples=300, deadline=None)
@given(labeled_distributions(), st.booleans(), st.floats(0, 1))
def test_suggested_low_is_always_below_suggested_high(data, invert, min_precision):
    scores, truth = data
    suggested = suggest_thresholds(scores, truth, invert=invert, min_precision=min_precision)
    for kind in ("best_f1", "best_recall_at_precision"):
        low, high = suggested["low"][kind], suggested["high"][kind]
        if low is not None and high is not None:
            assert low["threshold"] < high["threshold"]
        for name, pick in (("low", low), ("high", high)):
            if pick is None:
                continue
            quality = point_figures(scores, truth, pick["threshold"] if name == "low" else None,
                                    pick["threshold"] if name == "high" else None, invert)
            side = "present" if (name == "high") != invert else "absent"
            assert pick["precision"] == pytest.approx(quality[side]["precision"]["value"])
            assert pick["recall"] == pytest.approx(quality[side]["recall"]["value"])
            if kind == "best_recall_at_precision":
                assert pick["precision"] >= min_precision


def test_the_present_side_keeps_its_best_cut_and_the_absent_side_yields():
    # Absent samples score everywhere: alone, the best ABSENT cut (score <= 3) would cross the best PRESENT cut (>= 2).
    scores = np.array([0, 1, 2, 3, 2, 3], np.float32)
    truth = np.array([-1, -1, -1, -1, 1, 1], np.int8)
    suggested = suggest_thresholds(scores, truth)
    assert suggested["high"]["best_f1"]["threshold"] == 2.0
    assert suggested["low"]["best_f1"]["threshold"] == 1.0
    inverted = suggest_thresholds(-scores, truth, invert=True)
    assert inverted["low"]["best_f1"]["threshold"] == -2.0 and inverted["high"]["best_f1"]["threshold"] == -1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-1, 1, width=32), st.floats(-2.0 ** -124, 2.0 ** -124, width=32),
                          st.floats(allow_nan=False, allow_infinity=False, width=32)), min_size=1, max_size=60),
       st.integers(1, 12), st.data())
def test_float32_scores_bin_as_their_exact_float64_values(values, bins, data):
    """The scan's float32 scores are binned in float32 against the edges' float32 bounds: the same bins and
    edge counts as the float64 values, edges falling between float32 values and on them alike, over the whole
    finite range (subnormal spans, spans past float32's largest value)."""
    scores = np.array(values, dtype=np.float32)
    truth = np.array(data.draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=len(values), max_size=len(values))),
                     dtype=np.int8)
    narrow, wide = bin_scores(scores, truth, bins), bin_scores(scores.astype(np.float64), truth, bins)
    assert np.array_equal(narrow.edges, wide.edges)
    assert np.array_equal(narrow.per_bin, wide.per_bin) and np.array_equal(narrow.per_edge, wide.per_edge)
    assert np.array_equal(narrow.totals, wide.totals)
