"""The numbers of a fast model and of a training set's report. Pure numpy / scikit-learn, no Django.

A fast model is one logistic regression per class on embedding rows, fitted on labels (ground truth) or on
probabilities (a training set's); C is chosen by F1 on the dev rows with ground truth along a warm-started path.
Labels and votes are int8: 1 PRESENT, -1 ABSENT, 0 ABSTAIN / unlabeled.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imagestudio.embeddings.matrix import Matrix
from imagestudio.labeling import metrics
from imagestudio.labeling.calibration import calibration_table
from imagestudio.labeling.label_choice import ClassLabels, score_probabilities
from imagestudio.labeling.label_model import labels_from_probability

from .soft_logistic import ProbabilisticLogisticRegression

# Ascending: each fit starts from the previous one. Embedding rows are unit vectors of hundreds of dimensions
# (each coordinate ~ 1 / sqrt(dim)), so a useful C is far above scikit-learn's 1: on bench/label_quality.py's
# digits the dev choice was 1,000 in the visual space and 10-1,000 in the joint one, and valid F1 on train ground
# truth rose from 0.833 (grid 0.1-10) to 0.903 (visual), 0.514 to 0.641 (joint).
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_C = 100.0  # without dev labels of both sides there is nothing to choose C on: the grid's upper middle
MAX_ITER = 300
TARGET_KINDS = ("labels", "probabilities")  # what a fast model's regression may fit (select_targets_and_c)
# A model trained on dev rows scores them out-of-fold (cross-fitting), and LFs over it and the label model judge it on
# dev by those scores, so each fold model should be nearly the model itself. With 200 dev labels a fold model of 3
# folds learned 133 of them and was visibly weaker on dev than the whole model elsewhere: an LF over it read
# worse on dev than on valid, the label model's calibration on dev softened it (valid ECE up to 0.09 on
# bench/label_quality.py's digits). Ten folds learn 90 % of the rows. Above CROSS_FIT_LARGE_ROWS rows the learning
# curve is flat and ten folds would cost 3x the fits for nothing.
CROSS_FIT_FOLDS, CROSS_FIT_FOLDS_LARGE, CROSS_FIT_LARGE_ROWS = 10, 3, 20_000


@dataclass(frozen=True)
class LinearFit:
    coef: np.ndarray  # float32, (dim,)
    intercept: np.float32
    c_value: float
    dev_f1_by_c: dict[str, float] | None  # None when C was not selected on dev
    cv_f1_by_c: dict[str, float] | None = None  # when C was selected by cross-validation instead
    # With cv_f1_by_c: each training row's decision score from the fold model that did not see it, at the chosen C
    held_out_scores: np.ndarray | None = field(default=None, repr=False)
    targets: str = "labels"  # what was fitted: "labels" or "probabilities" (select_targets_and_c)
    dev_f1_by_targets: dict[str, float] | None = None  # when two kinds were compared on dev: kind -> best dev F1


def fit_logistic(features, target, c_value, seed, warm_from=None):
    """Logistic regression on `target`: bool PRESENT per row, or float P(PRESENT) per row (a training set's
    probabilities, fitted by cross-entropy against them: soft_logistic says why). `warm_from`, a model fitted on
    the same rows with another C, is refitted from its solution (far fewer L-BFGS iterations than from zero)."""
    from sklearn.linear_model import LogisticRegression

    if warm_from is None:
        warm_from = (LogisticRegression(max_iter=MAX_ITER, random_state=seed, warm_start=True)
                     if target.dtype == bool else ProbabilisticLogisticRegression(max_iter=MAX_ITER, warm_start=True))
    warm_from.set_params(C=c_value)
    warm_from.fit(features, target)
    return warm_from


def _linear(fitted, c_value):
    return LinearFit(fitted.coef_[0].astype(np.float32), np.float32(fitted.intercept_[0]), c_value, None)


def fit_default(features: np.ndarray, target: np.ndarray, seed: int) -> LinearFit:
    """One fit at DEFAULT_C (target: as fit_logistic's)."""
    return _linear(fit_logistic(features, target, DEFAULT_C, seed), DEFAULT_C)


def select_c(features: np.ndarray, target: np.ndarray, dev_features: np.ndarray, dev_positive: np.ndarray,
             seed: int, c_grid: Sequence[float] = C_GRID) -> LinearFit:
    """Fit `target` (as fit_logistic's) along `c_grid` (ascending, each fit warm-started from the previous) and
    keep the fit with the best F1 on dev (the smallest C on ties)."""
    from sklearn.metrics import f1_score

    fitted, best, selection = None, None, {}
    for c_value in c_grid:
        fitted = fit_logistic(features, target, c_value, seed, warm_from=fitted)
        selection[str(c_value)] = float(f1_score(dev_positive, fitted.decision_function(dev_features) >= 0,
                                                 zero_division=0))
        if best is None or selection[str(c_value)] > selection[str(best.c_value)]:
            best = _linear(fitted, c_value)
    return replace(best, dev_f1_by_c=selection)


def select_targets_and_c(features: np.ndarray, targets: dict[str, np.ndarray], dev_features: np.ndarray,
                         dev_positive: np.ndarray, seed: int, c_grid: Sequence[float] = C_GRID) -> LinearFit:
    """select_c for each kind of targets ({"probabilities": float, "labels": bool}, or one of them), keeping the
    best dev F1 (ties to the earlier kind). Cross-entropy against a training set's probabilities makes a row the
    label model is unsure of pull less, which helps where the features can follow them; where they cannot (a
    weak space), the fit stays near the balance and says ABSENT wherever it is unsure, and the labels do better.
    bench/README.md has the figures."""
    fits = {kind: select_c(features, target, dev_features, dev_positive, seed, c_grid)
            for kind, target in targets.items()}
    best_f1 = {kind: max(fit.dev_f1_by_c.values()) for kind, fit in fits.items()}
    chosen = max(fits, key=lambda kind: (best_f1[kind], -list(fits).index(kind)))
    return replace(fits[chosen], targets=chosen, dev_f1_by_targets=best_f1 if len(fits) > 1 else None)


def cross_fit_folds(rows: int) -> int:
    """Folds of the cross-fitting of a model trained on `rows` rows, dev rows among them (CROSS_FIT_FOLDS says why)."""
    return CROSS_FIT_FOLDS if rows <= CROSS_FIT_LARGE_ROWS else CROSS_FIT_FOLDS_LARGE


def select_c_by_cv(features: np.ndarray, positive: np.ndarray, seed: int, folds: int = 3,
                   c_grid: Sequence[float] = C_GRID) -> LinearFit:
    """C by stratified k-fold F1 (the smallest C on ties), then one fit on all rows: the regression a user
    with these labels (bool: the folds are stratified and scored by them) everywhere would get. `cv_f1_by_c`
    holds the F1 per C of the pooled out-of-fold predictions (not a mean of per-fold F1s: with ten folds and a
    few dozen positives a fold holds a handful, and its F1 jumps between 0, 0.67 and 1), `held_out_scores` the
    chosen C's out-of-fold decision scores of the rows."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(positive.sum()), int((~positive).sum()))
    held_out_scores = {str(c): np.empty(len(positive), dtype=np.float32) for c in c_grid}
    for train, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, positive):
        fitted = None
        for c_value in c_grid:
            fitted = fit_logistic(features[train], positive[train], c_value, seed, warm_from=fitted)
            held_out_scores[str(c_value)][held_out] = fitted.decision_function(features[held_out])
    selection = {key: float(f1_score(positive, scores >= 0, zero_division=0)) for key, scores in held_out_scores.items()}
    best = max(c_grid, key=lambda c: (selection[str(c)], -c))
    return replace(_linear(fit_logistic(features, positive, best, seed), best), cv_f1_by_c=selection,
                   held_out_scores=held_out_scores[str(best)])


def decision_scores(matrix: Matrix, coef: np.ndarray, intercept: np.float32) -> np.ndarray:
    """Decision function of every matrix row (aligned with its sample ids), computed on the scan matrix itself
    (widening 500,000 rows to float32 would cost ten times the product)."""
    return matrix.score(coef)[1] + np.float32(intercept)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def evaluate(scores: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall, F1, PR and ROC AUC and the confusion counts of `scores >= 0` on the labeled rows."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labeled = truth != 0
    if not labeled.any():
        return {"labeled": 0, "reason": "the valid split has no ground truth for this class"}
    y, predicted = truth[labeled] == 1, scores[labeled] >= 0
    tp, fp, fn = int((y & predicted).sum()), int((~y & predicted).sum()), int((y & ~predicted).sum())
    both = y.any() and (~y).any()
    return {
        "labeled": int(labeled.sum()), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),  # each undefined (None) where its denominator is 0, as LF figures are
        "pr_auc": float(average_precision_score(y, scores[labeled])) if y.any() else None,
        "roc_auc": float(roc_auc_score(y, scores[labeled])) if both else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": int((~y & ~predicted).sum())},
    }


def label_counts(labels: np.ndarray) -> dict:
    """How many samples a class's training labels cover, and on which side."""
    return {"covered": int((labels != 0).sum()), "present": int((labels == 1).sum()),
            "absent": int((labels == -1).sum())}


def label_model_report(result: ClassLabels, votes: np.ndarray, truth: np.ndarray, valid: np.ndarray,
                       lfs: Sequence[tuple[int, str]]) -> dict:
    """A class's label-model report: the choice, every candidate's figures on dev (out-of-fold, as chosen) and on
    valid (refit on all dev labels), calibration on both, and per LF (a column of `votes`, named by an (id, name)
    pair) what the model learned next to its ground-truth precision. JSON-serializable."""
    labeled_valid = valid & (truth != 0)

    def scored(name):
        """A candidate's valid rows and the estimate its label-less rows take. Where dev labels scored the candidates
        (`label_less`), a label-less row takes that estimate's side, as its label does. Where they could not, such a
        row's label abstains: it is left out, so that the figures describe the labels the set gives (a keyword-only
        class was scored PRESENT on 49 rows it labelled ABSTAIN)."""
        if result.label_less:
            return labeled_valid, result.label_less[name]
        labelled = labels_from_probability(result.candidate_probability[name]).label != 0
        return labeled_valid & labelled, result.prior

    candidates = {}
    for name, figures in result.candidates.items():
        rows, label_less = scored(name)
        candidates[name] = {"dev": figures, "valid": score_probabilities(
            result.candidate_probability[name][rows], truth[rows], label_less)}
    chosen_rows = labeled_valid & (result.labels.label != 0) if not result.label_less else labeled_valid
    lf_ids = [lf_id for lf_id, _ in lfs]
    return {
        "chosen": result.chosen, "reason": result.reason, "candidates": candidates,
        "calibration": {"dev": result.calibration,
                        "valid": calibration_table(result.labels.probability[chosen_rows], truth[chosen_rows]),
                        "map": result.calibration_map.report()},
        "dependent_groups": [[lf_ids[j] for j in group] for group in result.dependent_groups],
        "lfs": [{**{key: value for key, value in diagnostics.items() if key not in ("lf", "dependence_group")},
                 "lf": lf_ids[k], "name": lfs[k][1], "dependence_group": [lf_ids[j] for j in diagnostics["dependence_group"]],
                 "ground_truth_precision": metrics.vote_precision(votes[:, k], truth)}
                for k, diagnostics in enumerate(result.lfs)],
    }
