"""The logistic regression on probabilistic targets, against scikit-learn's on the objective it stands for."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from imagestudio.training import fitting
from imagestudio.training.soft_logistic import ProbabilisticLogisticRegression

TIGHT = {"max_iter": 10_000, "tol": 1e-10}


def rows_and_probabilities(seed, n=300, dim=6):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim)).astype(np.float32)
    probability = 1 / (1 + np.exp(-(features @ rng.normal(size=dim) * 2 - 0.5)))
    return features, probability


def objective(features, target, coef, intercept, c_value):
    """scikit-learn's L2 logistic objective, as a sum: |w|^2 / 2 + C * sum of cross-entropies."""
    logits = features.astype(np.float64) @ coef + intercept
    return coef @ coef / 2 + c_value * np.sum(np.logaddexp(0, logits) - target * logits)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c_value=st.sampled_from([0.1, 1.0, 100.0]))
def test_probabilities_fit_as_scikit_learn_fits_each_row_twice_weighted_p_and_1_minus_p(seed, c_value):
    features, probability = rows_and_probabilities(seed)
    ours = ProbabilisticLogisticRegression(C=c_value, **TIGHT).fit(features, probability)
    doubled = LogisticRegression(C=c_value, **TIGHT).fit(
        np.concatenate([features, features]), np.r_[np.ones(len(features)), np.zeros(len(features))],
        sample_weight=np.r_[probability, 1 - probability])
    # The same minimum of the same objective (compared by value: at C = 100 the minimum is flat).
    ours_value = objective(features, probability, ours.coef_[0], ours.intercept_[0], c_value)
    theirs_value = objective(features, probability, doubled.coef_[0], doubled.intercept_[0], c_value)
    assert ours_value == pytest.approx(theirs_value, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(ours.decision_function(features), doubled.decision_function(features),
                               rtol=1e-2, atol=1e-2)


def test_labels_as_probabilities_are_scikit_learns_fit():
    features, probability = rows_and_probabilities(1)
    positive = probability > 0.5
    ours = ProbabilisticLogisticRegression(C=1.0, **TIGHT).fit(features, positive.astype(np.float64))
    theirs = LogisticRegression(C=1.0, **TIGHT).fit(features, positive)
    # The same minimum; where the two solvers stop near it differs by ~1e-5 from one CPU's floating point to another's.
    assert objective(features, positive, ours.coef_[0], ours.intercept_[0], 1.0) == pytest.approx(
        objective(features, positive, theirs.coef_[0], theirs.intercept_[0], 1.0), rel=1e-7)
    np.testing.assert_allclose(ours.coef_[0], theirs.coef_[0], rtol=1e-4, atol=1e-4)
    assert ours.intercept_[0] == pytest.approx(theirs.intercept_[0], abs=1e-4)


def test_a_row_is_pulled_towards_its_probability_not_its_label():
    """What probabilities add over labels: a row the label model is unsure of (0.6) is fitted near 0.6, where its
    hard label would push it to PRESENT. The row has a feature of its own, so nothing else holds it back."""
    features, probability = rows_and_probabilities(2)
    own = np.zeros((len(features) + 1, 1), dtype=np.float32)
    own[-1] = 1.0
    rows = np.hstack([np.r_[features, features[:1]], own])
    fitted = {target: ProbabilisticLogisticRegression(C=1e4, **TIGHT).fit(rows, np.r_[probability, target])
              for target in (0.6, 1.0)}
    row_probability = {target: 1 / (1 + np.exp(-fit.decision_function(rows[-1:])[0])) for target, fit in fitted.items()}
    assert row_probability[0.6] == pytest.approx(0.6, abs=0.02)
    assert row_probability[1.0] > 0.99


def test_fit_logistic_takes_probabilities_warm_started_along_the_grid():
    features, probability = rows_and_probabilities(3)
    start = fitting.fit_logistic(features, probability, 0.01, seed=0)
    assert isinstance(start, ProbabilisticLogisticRegression)
    warm = fitting.fit_logistic(features, probability, 10.0, seed=0, warm_from=start)
    cold = fitting.fit_logistic(features, probability, 10.0, seed=0)
    np.testing.assert_allclose(warm.coef_[0], cold.coef_[0], rtol=1e-2, atol=1e-3)
    assert warm.n_iter_[0] < cold.n_iter_[0]
    assert isinstance(fitting.fit_logistic(features, probability > 0.5, 1.0, seed=0), LogisticRegression)


def test_select_c_on_probabilities_is_scored_on_dev_labels():
    features, probability = rows_and_probabilities(4, n=600)
    fit = fitting.select_c(features[:400], probability[:400], features[400:], probability[400:] > 0.5, seed=0)
    assert list(fit.dev_f1_by_c) == [str(c) for c in fitting.C_GRID]
    assert fit.dev_f1_by_c[str(fit.c_value)] == max(fit.dev_f1_by_c.values()) > 0.8
    assert fit.coef.dtype == np.float32


@pytest.mark.parametrize("labels_win", [False, True])
def test_select_targets_and_c_keeps_the_better_dev_f1(labels_win):
    features, probability = rows_and_probabilities(6, n=600)
    dev_positive = probability[400:] > 0.5
    if labels_win:  # dev labels flipped near the boundary, where the two fits part: here the labels' fit wins
        dev_positive = np.where(np.abs(probability[400:] - 0.5) < 0.1, ~dev_positive, dev_positive)
    targets = {"probabilities": probability[:400], "labels": probability[:400] > 0.5}
    fit = fitting.select_targets_and_c(features[:400], targets, features[400:], dev_positive, seed=0)
    each = {kind: fitting.select_c(features[:400], target, features[400:], dev_positive, seed=0)
            for kind, target in targets.items()}
    best = {kind: max(one.dev_f1_by_c.values()) for kind, one in each.items()}
    assert fit.dev_f1_by_targets == best
    chosen = max(best, key=lambda kind: (best[kind], kind == "probabilities"))  # ties to the first kind
    assert fit.targets == chosen == ("labels" if labels_win else "probabilities")
    np.testing.assert_array_equal(fit.coef, each[chosen].coef)


def test_one_kind_of_targets_is_select_c_with_nothing_compared():
    features, probability = rows_and_probabilities(7, n=600)
    dev_positive = probability[400:] > 0.5
    fit = fitting.select_targets_and_c(features[:400], {"labels": probability[:400] > 0.5}, features[400:],
                                       dev_positive, seed=0)
    alone = fitting.select_c(features[:400], probability[:400] > 0.5, features[400:], dev_positive, seed=0)
    assert (fit.targets, fit.dev_f1_by_targets) == ("labels", None)
    np.testing.assert_array_equal(fit.coef, alone.coef)
