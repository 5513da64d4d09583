"""Per-class training labels: every candidate aggregation of the LF votes scored on the same dev samples, the
best one labels every sample. Pure numpy and scikit-learn, no Django.

API
---
    result = label_class_votes(votes, truth, dev_mask, seed=0)

- votes: (n, m) int8, 1 PRESENT / -1 ABSENT / 0 ABSTAIN, one column per LF of the class (m may be 0).
- truth: (n,) int8 ground truth, 1 / -1 / 0 unlabeled; only rows where dev_mask is True are read.
- dev_mask: (n,) bool, the dev rows.

Returns a `ClassLabels`:
- `labels`: `Labels(probability float32 (n,) in [0, 1], label int8 (n,))` of the chosen candidate refit on all
  dev labels, for every row;
- `chosen` (candidate name) and `reason`;
- `candidates`: {name: {"accuracy", "f1", "brier", "scored", "tp", "fp", "fn", "tn"}} on the dev samples;
- `lfs`: per LF the conditionals an EM fit learned (`learned_by`: the semi-supervised one where dev labels can
  score candidates, at least 2 of both classes; else the unsupervised one; whichever candidate labels the rows),
  dev precision / recall with Wilson intervals, a `check` flag;
- `calibration`: `calibration_table` of the chosen candidate's out-of-fold dev probabilities;
- `dependent_groups`: LF column indices the model treats as one source;
- `prior`: the dev PRESENT share (where dev labels cannot score candidates, the unsupervised EM's class
  balance): what stands in for a row a candidate says nothing of on other splits' figures;
- `dev_probability`: (n,) float32 out-of-fold probability of the chosen candidate on labeled dev rows, NaN
  elsewhere (for calibration plots); `report()`: everything but the arrays, JSON-serializable.

Candidates (`label_class_votes`)
--------------------------------
prior_only (the dev majority class), majority_vote, em_unsupervised, em_semi_supervised (dev labels
clamped), logistic_regression (L2, C=1, on one-hot PRESENT / ABSENT indicators, fit on dev labels). All are
scored on the same labeled dev rows with one rule: where a candidate gives no label (label 0: no vote, a tie,
probability exactly 0.5 or NaN) the row takes the candidate's label-less estimate (the PRESENT share of the rows
it leaves label-less, shrunk towards their PRESENT share: `calibration.label_less_estimate`, what the calibration
gives such rows in the end; of the training folds for a candidate that learns from dev labels, of all dev for
the others, so that their dev figures are those of their labels), its value for the Brier score and its side
for the label. Candidates that learn from dev labels (prior_only, the
semi-supervised EM, the regression) are scored out-of-fold: stratified k-fold over the labeled dev rows, fit
on the other folds' labels, predict the held-out fold. A candidate less accurate on dev than prior_only (its
majority class everywhere) is no labeler and is not eligible, unless that leaves none with majority vote's dev F1:
F1 alone can prefer labelling every sample PRESENT (F1 2p / (1 + p) at a PRESENT share p) to LFs that find
few positives precisely. With fewer than MIN_LEARNING_LABELS dev labels of either class, the candidates fitted on
the dev labels alone (prior_only, the regression) are scored and reported but not eligible: fitted on a handful of
labels they can score well out-of-fold and still label far worse than majority vote (with 12 dev positives a
regression labelled 10% of the rows PRESENT where 30% were; with two, prior_only labelled the whole class ABSENT).
The semi-supervised EM stays eligible: it fits the unlabeled rows too, and a few labels are what orient LFs
written the wrong way round (bench/label_small_dev.py measured both). The choice is by dev F1 (PRESENT positive), with the
noise of a few hundred labels taken into account: the eligible candidates are those whose dev F1 is within one
paired standard error of the best (a bootstrap over the same dev rows, BOOTSTRAP_RESAMPLES resamples) and not
below majority vote's; among them the lowest dev Brier score wins (a proper score: it reads every probability,
where F1 reads one threshold, so it separates candidates F1 cannot tell apart), ties to the simpler candidate
(the order of CANDIDATES). So the choice never has a lower dev F1 than majority vote, and a candidate whose F1
lead is within noise does not win on it alone. Without at least 2 labeled dev rows, or with dev labels of one
class only (where a candidate saying that class everywhere scores perfectly), nothing can be scored:
em_unsupervised is chosen where at least MIN_UNSUPERVISED_SOURCES independent LFs vote (a dependence group
counts once), majority vote otherwise: with fewer, an unsupervised EM is not identified (one LF's votes fit a
model in which they say nothing about the class as well as one in which they decide it, and the smoothing prior
picked the first: every row at 0.5), while majority vote assumes only that each LF is better than chance. The
chosen candidate is refit on all dev labels to label every row.

Calibration: the chosen candidate's probabilities go through a map fitted on its out-of-fold dev probabilities
that moves no label (`calibration.LabelPreservingCalibration`, whose module says how and why).

Labels: PRESENT where the chosen candidate's probability is above 0.5, ABSENT below, ABSTAIN (0) at exactly 0.5
or where the candidate has no information (majority vote on a row without votes). Where dev labels can score
candidates (and so calibrate), a label-less row's probability is its label-less estimate (not 0.5) and its label
that estimate's side, as it was scored: a class whose only LF is a keyword (PRESENT or silent) gets ABSENT
labels where it is silent when dev says so. Where they cannot (fewer than 2, or of one class), label-less rows
abstain: a fast model on a keyword-only class then has no negative label, and says so.
"""

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from imagestudio.common.votes import ABSENT, ABSTAIN, PRESENT

from .calibration import LabelPreservingCalibration, calibration_table, label_less_estimate
from .label_model import DawidSkene, Labels, MajorityVote, VoteDesign, labels_from_probability, sigmoid_probability
from .lf_diagnostics import lf_diagnostics

# Simplest first: ties in dev F1 go to the earlier name.
CANDIDATES = ("prior_only", "majority_vote", "em_unsupervised", "em_semi_supervised", "logistic_regression")
DEFAULT_FOLDS = 5
BOOTSTRAP_RESAMPLES = 200


# ---------------------------------------------------------------- scoring


def predicted_present(probability, fallback_present):
    """Per row, whether the candidate's label is PRESENT once a label-less row (tie or NaN) takes the side of its
    fallback estimate: the one rule every candidate is scored by."""
    label = labels_from_probability(probability).label
    return np.where(label == ABSTAIN, fallback_present > 0.5, label == PRESENT)


def score_probabilities(probability, truth, fallback_present):
    """Accuracy, F1 (PRESENT positive), Brier score and counts of probabilities against truth (1 / -1).

    fallback_present: per row, the P(PRESENT) standing in where the candidate says nothing: a label-less row
    (tie or NaN) takes it as its probability and its side as its label.
    """
    probability = np.asarray(probability, dtype=np.float64)
    fallback_present = np.broadcast_to(np.asarray(fallback_present, dtype=np.float64), probability.shape)
    filled = np.where(labels_from_probability(probability).label == ABSTAIN, fallback_present, probability)
    positive = np.asarray(truth) == PRESENT
    predicted = predicted_present(probability, fallback_present)
    tp, fp = int((predicted & positive).sum()), int((predicted & ~positive).sum())
    fn, tn = int((~predicted & positive).sum()), int((~predicted & ~positive).sum())
    scored = len(probability)
    return {"accuracy": (tp + tn) / scored if scored else None,
            # 0 when neither truth nor prediction has a PRESENT (scikit-learn's zero_division default)
            "f1": 2 * tp / max(2 * tp + fp + fn, 1) if scored else None,
            "brier": float(np.mean((filled - positive) ** 2)) if scored else None,
            "scored": scored, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


# ---------------------------------------------------------------- candidates and the choice


def _stratified_folds(labels, folds, seed):
    """Fold number per labeled row: each class shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for side in (PRESENT, ABSENT):
        members = rng.permutation(np.flatnonzero(labels == side))
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment


def _logistic_probability(design, rows, present):
    """P(PRESENT) of an L2 logistic regression on the one-hot votes of `rows`, for every row of the design."""
    if present.all() or not present.any():  # one class only: the regression has nothing to separate
        return np.full(design.n, 1.0 if present.all() else 0.0, dtype=np.float32)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(design.matrix[rows], present)
    return sigmoid_probability(design.matrix @ model.coef_[0].astype(np.float32) + np.float32(model.intercept_[0]))


def _prior_probability(design, present):
    return np.full(design.n, present.mean(), dtype=np.float32)


@dataclass
class ClassLabels:
    labels: Labels
    chosen: str
    reason: str
    candidates: dict
    calibration_map: LabelPreservingCalibration
    lfs: list
    calibration: dict | None
    dependent_groups: list
    prior: float  # P(PRESENT) where a candidate says nothing: the dev PRESENT share, else the unsupervised EM's
    dev_probability: np.ndarray = field(repr=False)
    candidate_probability: dict = field(repr=False)
    # Per candidate, the P(PRESENT) its label-less rows would take were it chosen (`calibration.label_less_estimate`
    # of its out-of-fold dev probabilities); empty where the dev labels cannot score candidates (then the prior).
    label_less: dict = field(default_factory=dict)

    def report(self):
        return {"chosen": self.chosen, "reason": self.reason, "candidates": self.candidates,
                "calibration_map": self.calibration_map.report(), "lfs": self.lfs,
                "calibration": self.calibration, "dependent_groups": self.dependent_groups}


class _Candidates:
    """Each candidate as fit_predict(labeled rows it may learn from) -> P(PRESENT) for every row."""

    LEARNING = ("prior_only", "em_semi_supervised", "logistic_regression")

    def __init__(self, design, truth, options):
        self.design, self.truth, self.options = design, truth, options
        self.unsupervised = DawidSkene(**options).fit_design(design)
        self.majority = MajorityVote().predict_design(design).probability

    def semi_supervised(self, rows):
        clamp = np.zeros(self.design.n, dtype=np.int8)
        clamp[rows] = self.truth[rows]
        return DawidSkene(**self.options).fit_design(self.design, clamp, warm_start=self.unsupervised)

    def fit_predict(self, name, rows):
        present = self.truth[rows] == PRESENT
        if name == "prior_only":
            return _prior_probability(self.design, present)
        if name == "majority_vote":
            return self.majority
        if name == "em_unsupervised":
            return self.unsupervised.predict_design(self.design).probability
        if name == "em_semi_supervised":
            return self.semi_supervised(rows).predict_design(self.design).probability
        return _logistic_probability(self.design, rows, present)


def _out_of_fold(candidates, dev_rows, folds, seed):
    """(scores by candidate, per candidate the label-less estimate standing in for each dev row (module docstring),
    out-of-fold probabilities, folds): learning candidates predict each fold from the others' labels; the rest see
    no label."""
    truth = candidates.truth
    fold_of = _stratified_folds(truth[dev_rows], min(folds, len(dev_rows)), seed)
    out_of_fold = {name: np.empty(len(dev_rows), dtype=np.float32) for name in CANDIDATES}
    for name in CANDIDATES:
        if name not in candidates.LEARNING:
            out_of_fold[name][:] = candidates.fit_predict(name, dev_rows)[dev_rows]
    for fold in range(fold_of.max() + 1):
        held_out = fold_of == fold
        for name in candidates.LEARNING:
            out_of_fold[name][held_out] = candidates.fit_predict(name, dev_rows[~held_out])[dev_rows[held_out]]
    # A label-less row as the calibration will give it: the share of PRESENT among such rows, of the training folds
    # for a learning candidate; of all dev for the others, as their labels will have it (per fold, estimates near
    # 0.5 fell on both sides and the figures described other labels than theirs).
    positive, fallback = truth[dev_rows] == PRESENT, {name: np.empty(len(dev_rows)) for name in CANDIDATES}
    for name in CANDIDATES:
        if name not in candidates.LEARNING:
            fallback[name][:] = label_less_estimate(out_of_fold[name], positive, positive.mean())
    for fold in range(fold_of.max() + 1):
        held_out = fold_of == fold
        for name in candidates.LEARNING:
            fallback[name][held_out] = label_less_estimate(out_of_fold[name][~held_out], positive[~held_out],
                                                           positive[~held_out].mean())
    scores = {name: score_probabilities(out_of_fold[name], truth[dev_rows], fallback[name]) for name in CANDIDATES}
    return scores, fallback, out_of_fold, int(fold_of.max() + 1)


def paired_bootstrap_f1(predicted, positive, seed, resamples=BOOTSTRAP_RESAMPLES):
    """{name: F1 on each of `resamples` bootstrap resamples of the rows}, every prediction scored on the same
    resampled rows (paired). predicted: {name: bool array}; positive: the truth, bool."""
    rows = np.random.default_rng(seed).integers(0, len(positive), size=(resamples, len(positive)))
    truth = positive[rows]

    def f1(guess):
        guess = guess[rows]
        tp = (guess & truth).sum(axis=1)
        return 2 * tp / np.maximum(guess.sum(axis=1) + truth.sum(axis=1), 1)

    return {name: f1(guess) for name, guess in predicted.items()}


def f1_standard_errors(predicted, positive, best, seed):
    """Per candidate, the standard error of (best's dev F1 - its dev F1) over paired bootstrap resamples of the
    dev rows: both scored on the same resampled rows, so what they share cancels. predicted: {name: bool array}."""
    f1 = paired_bootstrap_f1(predicted, positive, seed)
    return {name: float(np.std(f1[best] - f1[name])) for name in predicted}


def _choose(scores, out_of_fold, fallback, truth, seed, choosable=CANDIDATES):
    """(chosen candidate, reason): no less accurate than prior_only, dev F1 within noise of the best and not below
    majority vote, then the lowest dev Brier score, then the simpler candidate (module docstring)."""
    floor = scores["majority_vote"]["f1"]
    accurate = [name for name in choosable if scores[name]["accuracy"] >= scores["prior_only"]["accuracy"]]
    pool = accurate if any(scores[name]["f1"] >= floor for name in accurate) else list(choosable)
    best = max(pool, key=lambda name: (scores[name]["f1"], -CANDIDATES.index(name)))
    predicted = {name: predicted_present(out_of_fold[name], fallback[name]) for name in pool}
    errors = f1_standard_errors(predicted, truth == PRESENT, best, seed)
    eligible = [name for name in pool if scores[name]["f1"] >= max(scores[best]["f1"] - errors[name], floor)]
    chosen = min(eligible, key=lambda name: (scores[name]["brier"], CANDIDATES.index(name)))
    inaccurate = [name for name in choosable if name not in accurate]
    reason = f"less accurate on dev than prior_only ({scores['prior_only']['accuracy']:.4f}): {', '.join(inaccurate)}"
    reason = ("" if not inaccurate else f"{reason}, so not eligible; " if pool == accurate
              else f"{reason}, eligible still (no other reaches majority vote's F1); ")
    reason += (f"best dev F1 {scores[best]['f1']:.4f} ({best}); within one paired standard error of it and not "
               f"below majority vote ({floor:.4f}): {', '.join(eligible)}; lowest dev Brier score among them: "
               f"{chosen} (F1 {scores[chosen]['f1']:.4f}, Brier {scores[chosen]['brier']:.4f})")
    return chosen, reason


MIN_UNSUPERVISED_SOURCES = 3
# Dev labels of each class below which a candidate fitted on them alone is not chosen (module docstring).
MIN_LEARNING_LABELS = 20
FITTED_ON_DEV = ("prior_only", "logistic_regression")


def _unscorable(dev_truth):
    """Why the dev labels cannot score candidates, or None: fewer than 2, or all of one class (then every candidate
    that says that class everywhere, prior_only first, scores perfectly: a choice by them would be no choice)."""
    if len(dev_truth) < 2:
        return "fewer than 2 labeled dev samples"
    if (dev_truth == dev_truth[0]).all():
        return f"dev labels of one class only ({len(dev_truth)} {'PRESENT' if dev_truth[0] == PRESENT else 'ABSENT'})"
    return None


def _few_to_learn_from(dev_truth):
    """Why the candidates that learn from the dev labels may not be chosen, or None (module docstring)."""
    present, absent = int((dev_truth == PRESENT).sum()), int((dev_truth == ABSENT).sum())
    if min(present, absent) >= MIN_LEARNING_LABELS:
        return None
    return f"dev labels {present} PRESENT / {absent} ABSENT, under {MIN_LEARNING_LABELS} of a class to learn from"


def _choice_without_labels(design, groups, why):
    """(chosen, reason) where the dev labels cannot score the candidates (`why`, module docstring)."""
    voting = set(np.flatnonzero(design.column_totals.reshape(2, -1).sum(axis=0) > 0).tolist())
    sources = len(voting) - sum(max(len(voting.intersection(group)) - 1, 0) for group in groups or [])
    if sources >= MIN_UNSUPERVISED_SOURCES:
        return "em_unsupervised", f"{why}: nothing to score candidates on"
    return "majority_vote", (f"{why}: nothing to score candidates on, and {sources} independent voting LF(s) do not "
                             f"identify an unsupervised EM (it needs {MIN_UNSUPERVISED_SOURCES})")


@dataclass
class _Choice:
    """What the choice settled: the chosen candidate, every candidate's dev figures and probabilities, the EM fit
    whose conditionals describe the LFs, the prior, and the chosen one's out-of-fold dev probabilities (if any)."""

    chosen: str
    reason: str
    scores: dict
    model: object
    learned_by: str
    prior: float
    candidate_probability: dict
    label_less: dict = field(default_factory=dict)
    out_of_fold: np.ndarray | None = None


def _choice_unscored(design, candidates, dev_rows, why):
    """Without dev labels that can score candidates (`why`): the learning candidates fall back to what the
    unsupervised model knows."""
    chosen, reason = _choice_without_labels(design, candidates.unsupervised.groups, why)
    unsupervised = candidates.fit_predict("em_unsupervised", dev_rows)
    probability = {name: unsupervised if name in candidates.LEARNING else candidates.fit_predict(name, dev_rows)
                   for name in CANDIDATES}
    prior = candidates.unsupervised.prior
    probability["prior_only"] = np.full(design.n, prior, dtype=np.float32)
    return _Choice(chosen, reason, {name: score_probabilities([], [], []) for name in CANDIDATES},
                   candidates.unsupervised, "em_unsupervised", prior, probability)


def _choice_scored(design, candidates, truth, dev_rows, folds, seed):
    """Every candidate scored out-of-fold on the dev labels, the choice among those eligible, and every candidate
    refit on all dev labels: the chosen one labels the rows, the others are for comparison."""
    scores, fallback, out_of_fold, fold_count = _out_of_fold(candidates, dev_rows, folds, seed)
    few = _few_to_learn_from(truth[dev_rows])
    choosable = [name for name in CANDIDATES if not (few and name in FITTED_ON_DEV)]
    chosen, reason = _choose(scores, out_of_fold, fallback, truth[dev_rows], seed, choosable)
    reason = f"{few}: {', '.join(FITTED_ON_DEV)} not eligible; {reason}" if few else reason
    reason += f" ({len(dev_rows)} dev samples, out-of-fold over {fold_count} folds)"
    model, positive = candidates.semi_supervised(dev_rows), truth[dev_rows] == PRESENT
    prior = float(positive.mean())
    probability = {name: candidates.fit_predict(name, dev_rows) for name in CANDIDATES if name != "em_semi_supervised"}
    probability["em_semi_supervised"] = model.predict_design(design).probability
    label_less = {name: label_less_estimate(out_of_fold[name], positive, prior) for name in CANDIDATES}
    return _Choice(chosen, reason, scores, model, "em_semi_supervised", prior, probability, label_less,
                   out_of_fold[chosen])


def label_class_votes(votes, truth, dev_mask, seed=0, folds=DEFAULT_FOLDS, model_options=None) -> ClassLabels:
    """Fit every candidate, score them on dev on equal terms, label all rows with the best (module docstring).

    model_options: keyword arguments of DawidSkene (e.g. dependence=False) for both EM candidates.
    """
    design = VoteDesign(votes)
    truth = np.asarray(truth, dtype=np.int8)
    dev_mask = np.asarray(dev_mask, dtype=bool)
    dev_rows = np.flatnonzero(dev_mask & (truth != ABSTAIN))
    candidates = _Candidates(design, truth, model_options or {})
    unscorable = _unscorable(truth[dev_rows])
    choice = (_choice_unscored(design, candidates, dev_rows, unscorable) if unscorable
              else _choice_scored(design, candidates, truth, dev_rows, folds, seed))
    probability, dev_probability = choice.candidate_probability[choice.chosen], np.full(design.n, np.nan, np.float32)
    calibration_map = LabelPreservingCalibration()
    if not unscorable:
        # Fitted on the chosen candidate's out-of-fold dev probabilities; no label moves (module docstring).
        calibration_map = LabelPreservingCalibration.fit(choice.out_of_fold, truth[dev_rows], choice.prior,
                                                         recurring=choice.chosen not in candidates.LEARNING)
        dev_probability[dev_rows] = calibration_map.apply(choice.out_of_fold)
        probability = choice.candidate_probability[choice.chosen] = calibration_map.apply(probability)
    label = labels_from_probability(probability).label  # the map moves no label, a label-less row takes a side
    # Majority vote on rows without votes has no information: the prior there rather than NaN.
    labels = Labels(probability=np.where(np.isnan(probability), np.float32(choice.prior), probability).astype(np.float32),
                    label=label)
    return ClassLabels(
        labels=labels, chosen=choice.chosen, reason=choice.reason, candidates=choice.scores,
        calibration_map=calibration_map,
        lfs=lf_diagnostics(choice.model, design.votes[dev_mask], truth[dev_mask], choice.learned_by,
                           cast=design.column_totals.reshape(2, -1) > 0),
        calibration=None if unscorable else calibration_table(dev_probability, truth),
        dependent_groups=[[int(j) for j in group] for group in choice.model.groups], prior=choice.prior,
        dev_probability=dev_probability, candidate_probability=choice.candidate_probability,
        label_less=choice.label_less)
