"""Fast-model and training-set report numbers, checked against scikit-learn and brute force (no database)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from imagestudio.embeddings.matrix import Matrix, pack
from imagestudio.training import fitting


def separable(rng, n, dim=8, positive_share=0.3, noise=1.0):
    """Rows whose first coordinate carries the class, the rest noise."""
    positive = rng.random(n) < positive_share
    features = rng.normal(0, noise, (n, dim)).astype(np.float32)
    features[:, 0] += np.where(positive, 1.5, -1.5)
    return features, positive


def cold_fit(features, positive, c_value):
    return LogisticRegression(C=c_value, max_iter=10_000, tol=1e-10).fit(features, positive)


def test_select_c_keeps_the_best_dev_f1():
    rng = np.random.default_rng(0)
    features, positive = separable(rng, 400, positive_share=0.1)
    dev_features, dev_positive = separable(rng, 200, positive_share=0.1)
    # So strong a penalty leaves the intercept to predict the majority (ABSENT) everywhere: dev F1 0.
    grid = (1e-5, 1.0)
    fit = fitting.select_c(features, positive, dev_features, dev_positive, seed=0, c_grid=grid)
    expected = {str(c): f1_score(dev_positive, cold_fit(features, positive, c).decision_function(dev_features) >= 0,
                                 zero_division=0) for c in grid}
    assert fit.dev_f1_by_c == pytest.approx(expected, abs=0.02)
    assert fit.dev_f1_by_c["1e-05"] == 0.0 < fit.dev_f1_by_c["1.0"]
    assert fit.c_value == 1.0


def test_select_c_takes_the_smallest_c_on_ties():
    rng = np.random.default_rng(1)
    features, positive = separable(rng, 300, noise=0.1)
    dev_features, dev_positive = separable(rng, 100, noise=0.1)  # every C classifies dev perfectly
    fit = fitting.select_c(features, positive, dev_features, dev_positive, seed=0)
    assert list(fit.dev_f1_by_c) == [str(c) for c in fitting.C_GRID]
    assert set(fit.dev_f1_by_c.values()) == {1.0}
    assert fit.c_value == fitting.C_GRID[0]
    smallest = cold_fit(features, positive, fitting.C_GRID[0])  # the solution kept is that C's, not the last one
    np.testing.assert_allclose(fit.coef, smallest.coef_[0], rtol=1e-2, atol=1e-3)


def test_warm_start_reaches_the_cold_solution():
    rng = np.random.default_rng(2)
    features, positive = separable(rng, 500)
    start = fitting.fit_logistic(features, positive, 0.01, seed=0)
    start_coef = start.coef_[0].copy()
    warm = fitting.fit_logistic(features, positive, 10.0, seed=0, warm_from=start)
    cold = cold_fit(features, positive, 10.0)
    # Within L-BFGS's stopping tolerance: far closer to the cold solution than where it started.
    distance = np.linalg.norm(warm.coef_[0] - cold.coef_[0]) / np.linalg.norm(cold.coef_[0])
    assert distance < 5e-3 < np.linalg.norm(start_coef - cold.coef_[0]) / np.linalg.norm(cold.coef_[0]) / 10
    assert warm.intercept_[0] == pytest.approx(cold.intercept_[0], abs=5e-3)
    assert warm.n_iter_[0] < fitting.fit_logistic(features, positive, 10.0, seed=0).n_iter_[0]  # the point of it


def test_fit_default_is_one_fit_at_the_default_c():
    rng = np.random.default_rng(3)
    features, positive = separable(rng, 300)
    fit = fitting.fit_default(features, positive, seed=0)
    assert (fit.c_value, fit.dev_f1_by_c) == (fitting.DEFAULT_C, None)
    assert fit.coef.dtype == np.float32 and fit.coef.shape == (features.shape[1],)
    np.testing.assert_allclose(fit.coef, cold_fit(features, positive, fitting.DEFAULT_C).coef_[0], rtol=1e-2, atol=1e-3)


def test_decision_scores_of_the_scan_matrix():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(50, 16)).astype(np.float16)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix = Matrix(sample_ids=np.arange(50), splits=np.zeros(50, np.int8), vectors=pack(vectors), dim=16, version=1)
    coef, intercept = rng.normal(size=16).astype(np.float32), np.float32(-0.3)
    scores = fitting.decision_scores(matrix, coef, intercept)
    np.testing.assert_allclose(scores, vectors.astype(np.float64) @ coef + intercept, rtol=5e-3, atol=5e-3)


def test_evaluate_matches_sklearn_on_random_data():
    rng = np.random.default_rng(5)
    truth = rng.choice(np.array([-1, 0, 1], np.int8), size=500, p=[0.5, 0.2, 0.3])
    scores = rng.normal(size=500) + 0.8 * truth
    result = fitting.evaluate(scores, truth)
    labeled = truth != 0
    y, predicted = truth[labeled] == 1, scores[labeled] >= 0
    tn, fp, fn, tp = confusion_matrix(y, predicted).ravel()
    assert result["labeled"] == labeled.sum()
    assert result["precision"] == pytest.approx(precision_score(y, predicted))
    assert result["recall"] == pytest.approx(recall_score(y, predicted))
    assert result["f1"] == pytest.approx(f1_score(y, predicted))
    assert result["pr_auc"] == pytest.approx(average_precision_score(y, scores[labeled]))
    assert result["roc_auc"] == pytest.approx(roc_auc_score(y, scores[labeled]))
    assert result["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def test_evaluate_without_labels_or_without_one_side():
    scores = np.array([0.5, -0.5, 1.0])
    assert fitting.evaluate(scores, np.zeros(3, np.int8))["labeled"] == 0
    only_present = fitting.evaluate(scores, np.array([1, 1, 0], np.int8))
    assert only_present["roc_auc"] is None and only_present["pr_auc"] == pytest.approx(1.0)
    assert only_present["confusion"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 0}
    assert fitting.evaluate(scores, np.array([-1, -1, 0], np.int8))["pr_auc"] is None


def test_label_model_report_names_lfs_and_scores_candidates_on_valid():
    from imagestudio.labeling.label_choice import CANDIDATES, label_class_votes

    rng = np.random.default_rng(6)
    n = 600
    truth = np.where(rng.random(n) < 0.3, 1, -1).astype(np.int8)
    votes = np.stack([np.where(rng.random(n) < 0.6, np.where(rng.random(n) < a, truth, -truth), 0) for a in
                      (0.9, 0.75, 0.6)], axis=1).astype(np.int8)
    dev, valid = np.arange(n) < 200, np.arange(n) >= 400
    report = fitting.label_model_report(label_class_votes(votes, truth, dev), votes, truth, valid,
                                        [(11, "a"), (12, "b"), (13, "c")])
    assert [(e["lf"], e["name"]) for e in report["lfs"]] == [(11, "a"), (12, "b"), (13, "c")]
    assert set(report["candidates"]) == set(CANDIDATES)
    for figures in report["candidates"].values():
        assert figures["dev"]["scored"] == 200 and figures["valid"]["scored"] == 200
        valid_counts = figures["valid"]
        assert valid_counts["tp"] + valid_counts["fp"] + valid_counts["fn"] + valid_counts["tn"] == 200
    assert report["calibration"]["valid"]["count"] == 200
    for k, entry in enumerate(report["lfs"]):
        scored = [(votes[i, k], truth[i]) for i in range(n) if votes[i, k] != 0 and truth[i] != 0]
        precision = entry["ground_truth_precision"]
        assert precision["trials"] == len(scored)
        assert precision["successes"] == sum(vote == label for vote, label in scored)


def test_label_model_report_without_dev_labels_scores_every_candidate_on_valid():
    """Fewer than 2 dev labels: the learning candidates fall back to the unsupervised model, and the report
    scores all of them on valid (it raised KeyError 'em_semi_supervised')."""
    from imagestudio.labeling.label_choice import CANDIDATES, label_class_votes

    truth = np.array([1, -1, 1, -1, 0, 0], np.int8)
    votes = np.array([[1, 1], [-1, 0], [1, -1], [0, -1], [1, 1], [-1, -1]], np.int8)
    no_dev, valid = np.zeros(6, dtype=bool), np.arange(6) < 4
    result = label_class_votes(votes, truth, no_dev)
    report = fitting.label_model_report(result, votes, truth, valid, [(1, "a"), (2, "b")])
    assert set(report["candidates"]) == set(CANDIDATES)
    unsupervised = report["candidates"]["em_unsupervised"]["valid"]
    for name in ("em_semi_supervised", "logistic_regression"):
        assert report["candidates"][name]["valid"] == unsupervised


def test_label_model_report_scores_valid_with_the_dev_share_where_a_candidate_says_nothing():
    """Where majority vote has no vote it says what prior_only says everywhere: the dev PRESENT share (it was the
    mean of the final probabilities over every row, another number)."""
    from imagestudio.labeling.label_choice import label_class_votes

    n = 40
    truth = np.where(np.arange(n) % 5 == 0, 1, -1).astype(np.int8)  # 0.2 PRESENT on dev and valid
    votes = np.zeros((n, 1), np.int8)
    votes[20:30, 0] = 1  # one LF votes PRESENT on 10 rows that are neither dev nor valid
    dev, valid = np.arange(n) < 10, np.arange(n) >= 30
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev)
    assert result.prior == pytest.approx(0.2)
    report = fitting.label_model_report(result, votes, truth, valid, [(1, "a")])
    majority, prior_only = (report["candidates"][name]["valid"] for name in ("majority_vote", "prior_only"))
    assert majority["brier"] == pytest.approx(prior_only["brier"]) == pytest.approx((0.8 ** 2 * 2 + 0.2 ** 2 * 8) / 10)
    assert majority["tn"] == prior_only["tn"] == 8


def test_label_model_report_scores_majority_vote_ties_on_valid_as_on_dev():
    """A tie takes the side of the dev ties' PRESENT share (shrunk towards the prior) in a candidate's dev figures;
    its valid figures did the same only where it was chosen, and sent its ties to the prior's side otherwise."""
    from imagestudio.labeling.calibration import LABEL_LESS_PSEUDO_COUNTS
    from imagestudio.labeling.label_choice import label_class_votes

    rng = np.random.default_rng(4)
    n = 900
    truth = np.where(rng.random(n) < 0.3, 1, -1).astype(np.int8)
    tie = rng.random(n) < 0.3
    truth[tie] = np.where(rng.random(tie.sum()) < 0.8, 1, -1)  # where the two LFs disagree, mostly PRESENT
    votes = np.stack([np.where(tie, 1, truth), np.where(tie, -1, truth)], axis=1).astype(np.int8)
    votes[~tie & (rng.random(n) < 0.2)] *= -1  # both wrong together: majority vote is no perfect labeler
    dev, valid = np.arange(n) < 300, np.arange(n) >= 600
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev)
    dev_ties = tie & dev
    estimate = (((truth == 1) & dev_ties).sum() + LABEL_LESS_PSEUDO_COUNTS * result.prior) / (
        dev_ties.sum() + LABEL_LESS_PSEUDO_COUNTS)
    assert result.label_less["majority_vote"] == pytest.approx(estimate) and estimate > 0.5 > result.prior
    majority = fitting.label_model_report(result, votes, truth, valid, [(1, "a"), (2, "b")])["candidates"][
        "majority_vote"]["valid"]
    said_present = np.where(tie, True, votes[:, 0] == 1)[valid]  # ties PRESENT, as dev has them
    positive = truth[valid] == 1
    assert (majority["tp"], majority["fp"]) == ((said_present & positive).sum(), (said_present & ~positive).sum())


def test_label_counts():
    assert fitting.label_counts(np.array([1, -1, 0, 1, 0], np.int8)) == {"covered": 3, "present": 2, "absent": 1}


def test_ceiling_c_by_cross_validation_is_the_best_cv_f1_then_one_fit_on_all():
    rng = np.random.default_rng(9)
    features = rng.normal(size=(300, 8)).astype(np.float32)
    positive = features[:, 0] + 0.5 * rng.normal(size=300) > 0.3
    fit = fitting.select_c_by_cv(features, positive, seed=0)
    assert set(fit.cv_f1_by_c) == {str(c) for c in fitting.C_GRID}
    assert fit.cv_f1_by_c[str(fit.c_value)] == max(fit.cv_f1_by_c.values())
    cold = fitting.fit_logistic(features, positive, fit.c_value, seed=0)
    assert np.allclose(fit.coef, cold.coef_[0], atol=1e-3)


def test_cross_fitting_uses_ten_folds_up_to_the_large_row_count_and_three_above():
    assert fitting.cross_fit_folds(200) == fitting.cross_fit_folds(fitting.CROSS_FIT_LARGE_ROWS) == 10
    assert fitting.cross_fit_folds(fitting.CROSS_FIT_LARGE_ROWS + 1) == 3


def test_cross_validated_fit_scores_each_row_by_the_fold_model_that_did_not_see_it():
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(10)
    features, positive = separable(rng, 240, noise=2.0)
    fit = fitting.select_c_by_cv(features, positive, seed=3)
    assert fit.held_out_scores.shape == (240,) and fit.held_out_scores.dtype == np.float32
    for train, held_out in StratifiedKFold(3, shuffle=True, random_state=3).split(features, positive):
        fold = cold_fit(features[train], positive[train], fit.c_value)
        np.testing.assert_allclose(fit.held_out_scores[held_out], fold.decision_function(features[held_out]),
                                   rtol=1e-2, atol=1e-2)
    # not the final model's in-sample scores
    assert not np.allclose(fit.held_out_scores, features @ fit.coef + fit.intercept, atol=1e-2)
    # C's figure is the F1 of the pooled out-of-fold predictions, not a mean of per-fold F1s
    predicted = fit.held_out_scores >= 0
    tp = int((predicted & positive).sum())
    assert fit.cv_f1_by_c[str(fit.c_value)] == pytest.approx(2 * tp / (2 * tp + int((predicted != positive).sum())))


@given(truth=st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=12),
       scores=st.lists(st.floats(-2, 2), min_size=12, max_size=12))
def test_each_figure_is_undefined_exactly_where_its_denominator_is_zero(truth, scores):
    truth, scores = np.array(truth, np.int8), np.array(scores[:len(truth)])
    result = fitting.evaluate(scores, truth)
    if not result["labeled"]:
        return
    c = result["confusion"]
    for name, numerator, denominator in (("precision", c["tp"], c["tp"] + c["fp"]),
                                         ("recall", c["tp"], c["tp"] + c["fn"]),
                                         ("f1", 2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])):
        assert result[name] == (numerator / denominator if denominator else None), name


def test_a_fit_without_negative_labels_from_a_training_set_says_how_to_get_some():
    from types import SimpleNamespace

    from imagestudio.training.preconditions import no_training_labels

    cat = SimpleNamespace(name="cat")
    assert "silent once dev has labels of both classes" in no_training_labels(cat, "negative", True).message
    for side, from_set in (("positive", True), ("negative", False)):
        message = no_training_labels(cat, side, from_set).message
        assert message.startswith(f"Class 'cat' has no {side} training labels") and "silent" not in message
