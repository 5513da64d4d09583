"""Chart curves checked against scikit-learn's precision_recall_curve / roc_curve on random data."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from imagestudio.training.curves import binary_curves, confusion, full_curve, labeled_scores


@st.composite
def scored(draw):
    n = draw(st.integers(0, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    truth = rng.choice(np.array([1, -1, 0], np.int8), size=n, p=draw(st.sampled_from(
        [[0.3, 0.5, 0.2], [0.02, 0.9, 0.08], [0.9, 0.05, 0.05], [0.5, 0.5, 0.0]])))
    scores = rng.normal(0, 1, n) + draw(st.floats(0, 3)) * (truth == 1)
    scores = np.round(scores, draw(st.integers(0, 4))).astype(np.float32)  # ties
    return scores, truth


@settings(max_examples=150, deadline=None)
@given(scored(), st.integers(3, 121))
def test_every_point_is_sklearns_at_its_threshold(data, points):
    scores, truth = data
    result = binary_curves(scores, truth, points)
    curve = result["curve"]
    labeled = truth != 0
    y, s = truth[labeled] == 1, scores[labeled].astype(np.float64)
    assert (result["positives"], result["negatives"]) == (int(y.sum()), int((~y).sum()))
    assert len(curve["thresholds"]) <= points
    if not labeled.any():
        assert curve["thresholds"] == [] and result["pr_auc"] is None and result["roc_auc"] is None
        return
    assert curve["thresholds"] == sorted(set(curve["thresholds"]), reverse=True)
    assert curve["thresholds"][0] == s.max() and (curve["tp"][-1], curve["fp"][-1]) == (y.sum(), (~y).sum())
    for k, t in enumerate(curve["thresholds"]):
        assert (curve["tp"][k], curve["fp"][k]) == (int((y & (s >= t)).sum()), int((~y & (s >= t)).sum()))
    if y.any():
        precision, recall, thresholds = precision_recall_curve(y, s)
        at = {t: (p, r) for p, r, t in zip(precision, recall, thresholds, strict=False)}
        for k, t in enumerate(curve["thresholds"]):
            assert (curve["precision"][k], curve["recall"][k]) == pytest.approx(at[t])
        assert result["pr_auc"] == pytest.approx(average_precision_score(y, s))
    else:
        assert curve["recall"] is None and result["pr_auc"] is None
    if y.any() and (~y).any():
        fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
        at = dict(zip(thresholds, zip(fpr, tpr, strict=True), strict=True))
        for k, t in enumerate(curve["thresholds"]):
            assert (curve["fpr"][k], curve["recall"][k]) == pytest.approx(at[t])
        assert result["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    else:
        assert result["roc_auc"] is None


@settings(max_examples=100, deadline=None)
@given(scored(), st.integers(3, 61))
def test_steps_between_kept_points_are_bounded_unless_one_score_makes_them(data, points):
    """Between two kept points, recall and false-positive rate move by at most 1/K (rounded up to a whole sample)
    before the full curve's last step into the second: a larger move is one distinct score's."""
    scores, truth = data
    curve = binary_curves(scores, truth, points)["curve"]
    thresholds, tp, fp = full_curve(*labeled_scores(scores, truth))
    steps = (points - 1) // 2
    index = {t: i for i, t in enumerate(thresholds.tolist())}
    kept = [index[t] for t in curve["thresholds"]]
    for counts in (tp, fp):
        total = counts[-1] if len(counts) else 0
        for before, after in zip(kept, kept[1:], strict=False):
            assert counts[after - 1] - counts[before] <= np.ceil(total / steps)


def test_confusion_at_the_threshold():
    scores = np.array([-1.0, 0.0, 0.5, 2.0, np.nan, 3.0], np.float32)
    truth = np.array([1, -1, 1, -1, 1, 0], np.int8)
    assert confusion(scores, truth, 0.0) == {"tp": 1, "fp": 2, "fn": 1, "tn": 0}
