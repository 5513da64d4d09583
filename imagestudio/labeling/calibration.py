"""A label model's probabilities made to mean what they say, with no label moved. Pure numpy, no Django.

A logistic map sigmoid(a logit(p) + b) (Platt scaling), fitted by
log loss on the chosen candidate's out-of-fold dev probabilities, rescales the probability of every row with a
label. The slope corrects over- or under-confidence (a regression on a few hundred labels, EM's independence
assumption), the intercept a shifted balance. Where the chosen candidate learns nothing from dev labels
(majority vote, unsupervised EM) its out-of-fold values are its values everywhere, so a value that recurs on
dev (a vote share, a vote pattern's posterior) takes its dev PRESENT frequency, shrunk towards the map with
LEVEL_PSEUDO_COUNTS: majority vote's shares are not log-odds a line can map. No label moves: a PRESENT row stays
above 0.5 and an ABSENT row below (by LABEL_MARGIN where the map would cross; those rows are the label's own
errors). Rows without a label (a tie, or no information) get the PRESENT frequency of the label-less
out-of-fold dev rows, shrunk towards the dev prior with LABEL_LESS_PSEUDO_COUNTS (`label_less_estimate`; the
labeler then labels them by its side, as the choice scored them): where majority vote
ties, the truth is seldom an even chance (temperature scaling alone, the slope without the rest, left majority
vote at a valid ECE up to 0.24 in bench/label_quality.py; bench/README.md has the figures). The dev reliability
table is computed after the map (on the rows it was fitted on: optimistic); valid is the honest figure.
"""

from dataclasses import dataclass

import numpy as np

from imagestudio.common.votes import ABSENT, ABSTAIN, PRESENT

from .label_model import labels_from_probability

CALIBRATION_BINS = 10


def calibration_table(probability, truth, bins=CALIBRATION_BINS):
    """Expected calibration error and a reliability table over equal-width bins of [0, 1].

    Rows with ground truth (1 / -1) and a finite probability count. ECE: the count-weighted mean of
    |mean predicted - observed PRESENT frequency| over the bins. None when no row counts.
    """
    probability, truth = np.asarray(probability, dtype=np.float64), np.asarray(truth)
    keep = (truth != ABSTAIN) & np.isfinite(probability)
    probability, positive = probability[keep], (truth[keep] == PRESENT)
    if not len(probability):
        return {"ece": None, "count": 0, "bins": []}
    index = np.minimum((probability * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=probability, minlength=bins)
    observed = np.bincount(index, weights=positive, minlength=bins)
    table, ece = [], 0.0
    for b in range(bins):
        if counts[b]:
            mean_predicted, frequency = predicted[b] / counts[b], observed[b] / counts[b]
            ece += counts[b] / len(probability) * abs(mean_predicted - frequency)
        else:
            mean_predicted = frequency = None
        table.append({"low": b / bins, "high": (b + 1) / bins, "count": int(counts[b]),
                      "mean_predicted": mean_predicted, "observed": frequency})
    return {"ece": float(ece), "count": int(len(probability)), "bins": table}


LABEL_MARGIN = 1e-3
LABEL_LESS_PSEUDO_COUNTS = LEVEL_PSEUDO_COUNTS = 4.0
_PLATT_RIDGE = 1.0  # pulls (a, b) towards the identity (1, 0) with the weight of about one labeled row
_MIN_CALIBRATION_ROWS = 10


def _logit(probability):
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def _stable_sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def platt_parameters(logit, positive, iterations=100):
    """(a, b) minimising the log loss of sigmoid(a logit + b) plus _PLATT_RIDGE / 2 ((a - 1)^2 + b^2): Newton's
    method with step halving (the loss is convex; majority vote's 0 / 1 shares make plain Newton overshoot);
    a >= 0, so the map stays monotone."""
    design = np.column_stack([logit, np.ones_like(logit)])
    identity = np.array([1.0, 0.0])
    sign = np.where(positive, 1.0, -1.0)

    def loss(weights):
        return np.logaddexp(0, -sign * (design @ weights)).sum() + _PLATT_RIDGE / 2 * ((weights - identity) ** 2).sum()

    weights, current = identity.copy(), loss(identity)
    for _ in range(iterations):
        predicted = _stable_sigmoid(design @ weights)
        gradient = design.T @ (predicted - positive) + _PLATT_RIDGE * (weights - identity)
        hessian = (design * (predicted * (1 - predicted))[:, None]).T @ design + _PLATT_RIDGE * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        while (candidate := loss(weights - step)) > current and np.abs(step).max() > 1e-12:
            step /= 2
        if candidate > current:
            break
        weights, improvement, current = weights - step, current - candidate, candidate
        if improvement < 1e-10:
            break
    return max(float(weights[0]), 0.0), float(weights[1])


def label_less_estimate(probability, positive, prior):
    """P(PRESENT) of a row a candidate gives no label (a tie, NaN): the PRESENT share of such rows among
    `probability` (its out-of-fold dev values; `positive`: their truth), shrunk towards `prior` with
    LABEL_LESS_PSEUDO_COUNTS."""
    without = labels_from_probability(probability).label == ABSTAIN
    return float((np.asarray(positive)[without].sum() + LABEL_LESS_PSEUDO_COUNTS * prior)
                 / (without.sum() + LABEL_LESS_PSEUDO_COUNTS))


@dataclass(frozen=True)
class LabelPreservingCalibration:
    """sigmoid(slope logit(p) + intercept) on rows with a label, kept on the label's side of 0.5; `label_less` on
    rows without one (module docstring)."""

    slope: float = 1.0
    intercept: float = 0.0
    label_less: float | None = None  # None: such rows keep the candidate's own value (the prior where NaN)
    fitted_on: int = 0
    # Probability values that recur among the dev rows (a candidate without learned parameters, such as majority
    # vote, gives the same value to the same vote shares): sorted values, their dev rows and PRESENT ones.
    levels: tuple = (np.empty(0, dtype=np.float32), np.empty(0), np.empty(0))

    @classmethod
    def fit(cls, probability, truth, prior, recurring=True):
        """probability: a candidate's out-of-fold values on labeled dev rows (NaN / 0.5 where it gives no label);
        truth: their 1 / -1; prior: the dev PRESENT share; recurring: whether a value means the same on dev as
        elsewhere (a candidate that learns nothing from dev labels: its out-of-fold values are its values),
        so recurring values may take their dev frequency. The identity below _MIN_CALIBRATION_ROWS labeled rows
        or without both classes among them."""
        probability, positive = np.asarray(probability, dtype=np.float64), np.asarray(truth) == PRESENT
        labeled = labels_from_probability(probability).label != ABSTAIN
        label_less = label_less_estimate(probability, positive, prior)
        sides = positive[labeled]
        if labeled.sum() < _MIN_CALIBRATION_ROWS or sides.all() or not sides.any():
            return cls(label_less=float(label_less))
        slope, intercept = platt_parameters(_logit(probability[labeled]), sides.astype(np.float64))
        values, index, counts = np.unique(np.asarray(probability[labeled], dtype=np.float32), return_inverse=True,
                                          return_counts=True)
        repeated = (counts > 1) & recurring
        levels = (values[repeated], counts[repeated],
                  np.bincount(index, weights=sides, minlength=len(values))[repeated])
        return cls(slope, intercept, float(label_less), int(labeled.sum()), levels)

    def apply(self, probability):
        """Calibrated float32 probabilities; every row with a label in labels_from_probability(probability) keeps
        its side of 0.5, a row without one gets `label_less` (when fitted)."""
        probability = np.asarray(probability, dtype=np.float64)
        label = labels_from_probability(probability).label
        mapped = _stable_sigmoid(self.slope * _logit(np.nan_to_num(probability, nan=0.5)) + self.intercept)
        values, counts, present = self.levels
        if len(values):  # a recurring value's dev frequency, with the map's value as LEVEL_PSEUDO_COUNTS of prior
            as_stored = probability.astype(np.float32)
            where = np.minimum(np.searchsorted(values, as_stored), len(values) - 1)
            hit = values[where] == as_stored
            blended = (present[where] + LEVEL_PSEUDO_COUNTS * mapped) / (counts[where] + LEVEL_PSEUDO_COUNTS)
            mapped = np.where(hit, blended, mapped)
        mapped = np.where(label == PRESENT, np.maximum(mapped, 0.5 + LABEL_MARGIN), mapped)
        mapped = np.where(label == ABSENT, np.minimum(mapped, 0.5 - LABEL_MARGIN), mapped)
        without_label = probability if self.label_less is None else np.full_like(probability, self.label_less)
        return np.where(label == ABSTAIN, without_label, mapped).astype(np.float32)

    def report(self):
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept,
                "label_less_probability": self.label_less, "fitted_on": self.fitted_on,
                "recurring_values": len(self.levels[0])}
