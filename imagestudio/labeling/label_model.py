"""Per-class label model: LF votes to probabilistic training labels. Pure numpy and scikit-learn, no Django.

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
- `lfs`: per LF the learned conditionals, dev precision / recall with Wilson intervals, a `check` flag;
- `calibration`: `calibration_table` of the chosen candidate's out-of-fold dev probabilities;
- `dependent_groups`: LF column indices the model treats as one source;
- `dev_probability`: (n,) float32 out-of-fold probability of the chosen candidate on labeled dev rows, NaN
  elsewhere (for calibration plots); `report()`: everything but the arrays, JSON-serializable.

Model (`DawidSkene`)
--------------------
Per LF j and class c, the distribution of its three outcomes theta[c, j] = P(ABSENT, PRESENT, ABSTAIN | c)
(Dawid & Skene 1979) and the class prior, fitted by EM with the LFs independent given the class. Abstaining
is an outcome like the others: a one-sided keyword LF (precise PRESENT, silent otherwise) has a high
P(ABSTAIN | absent), so its silence is evidence too, and a row without any vote still gets a posterior.
MAP estimates: each theta[c, j] has a Dirichlet prior of `smoothing` pseudo-counts spread as LF j's overall
outcome frequencies (shrinks towards "this LF says nothing about the class", so a few hundred rows cannot
make a rare outcome impossible), the prior a Beta(2, 2)-like one pseudo-count per class. The class balance
is learned. Semi-supervised: rows with ground truth have their posterior clamped to it in every E-step.

Orientation: swapping the classes gives the same unlabeled likelihood, so with 3-4 LFs EM can settle on the
mirror image. Unsupervised fits start from majority vote and are flipped at the end if the LFs' PRESENT
votes are not on average more frequent under PRESENT (and ABSENT votes under ABSENT); semi-supervised
fits start from the labeled rows (or a warm start) and take the orientation under which the clamped labels
are more likely, so dev labels override the "LFs beat chance" assumption.

Dependent LFs: down-weighted, not modelled. Two LFs are linked when their votes correlate above 0.8 over all
rows (near-duplicates, found before EM so that a family cannot take over the posterior first; independent
LFs reach that only when both are near-perfect, where counting them once costs little) or, after a fit,
above 0.5 within each class (posterior-weighted, averaged by the prior: dependence the class does not
explain). Connected components of the links form groups, and every member's log-likelihood term is divided
by its group's size (EM continues when the groups changed). The conditionals are still learned per LF.
Why not a dependency model: a family's joint outcome table has 3^k cells, unidentifiable from a few hundred
labels; "one vote per family" is exact for identical copies and errs on the cautious side otherwise, and it
keeps the E-step a single matrix-vector product.

Candidates (`label_class_votes`)
--------------------------------
prior_only (the dev majority class), majority_vote, em_unsupervised, em_semi_supervised (dev labels
clamped), logistic_regression (L2, C=1, on one-hot PRESENT / ABSENT indicators, fit on dev labels). All are
scored on the same labeled dev rows with one rule: where a candidate gives no label (label 0: no vote or a
tie, probability exactly 0.5) it counts as the prior-majority class of the training folds, and a NaN
probability as the training folds' PRESENT fraction. Candidates that learn from dev labels (prior_only, the
semi-supervised EM, the regression) are scored out-of-fold: stratified k-fold over the labeled dev rows, fit
on the other folds' labels, predict the held-out fold. The choice is the best dev F1 (PRESENT positive), ties
to the simpler candidate (the order of CANDIDATES); majority vote is a candidate, so the choice never has a
lower dev F1 than it. Without at least 2 labeled dev rows nothing can be scored: em_unsupervised is chosen.
The chosen candidate is refit on all dev labels to label every row.

Labels: PRESENT where the probability is above 0.5, ABSENT below, ABSTAIN (0) at exactly 0.5 or where the
candidate has no information (majority vote on a row without votes).
"""

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from imagestudio.labeling import metrics

PRESENT, ABSENT, ABSTAIN = 1, -1, 0
# Simplest first: ties in dev F1 go to the earlier name.
CANDIDATES = ("prior_only", "majority_vote", "em_unsupervised", "em_semi_supervised", "logistic_regression")
DEFAULT_FOLDS = 5
CALIBRATION_BINS = 10
_LOG_ODDS_LIMIT = 30.0  # exp() stays finite in float32, probabilities still round to 0 / 1


@dataclass
class Labels:
    probability: np.ndarray  # float32 P(PRESENT | votes) in [0, 1]; NaN only where a candidate has no information
    label: np.ndarray  # int8 1 / -1 / 0


def labels_from_probability(probability):
    """The one labeling rule of every candidate: sign of p - 0.5; 0 at a tie and where p is NaN."""
    probability = np.asarray(probability, dtype=np.float32)
    label = np.zeros(len(probability), dtype=np.int8)
    label[probability > 0.5] = PRESENT
    label[probability < 0.5] = ABSENT
    return Labels(probability=probability, label=label)


def _sigmoid(log_odds):
    return (1 / (1 + np.exp(-np.clip(log_odds, -_LOG_ODDS_LIMIT, _LOG_ODDS_LIMIT)))).astype(np.float32)


class VoteDesign:
    """Votes as one (n, 2m) float32 matrix of [ABSENT | PRESENT] indicators (ABSTAIN is the rest), so an EM step
    is one matrix-vector product each way; built once and shared by every fit on the same votes."""

    def __init__(self, votes):
        self.votes = np.asarray(votes, dtype=np.int8)
        self.n, self.m = self.votes.shape
        self.matrix = np.concatenate([self.votes == ABSENT, self.votes == PRESENT], axis=1).astype(np.float32)
        self.column_totals = self.matrix.sum(axis=0, dtype=np.float64)


class MajorityVote:
    name = "majority_vote"

    def fit(self, votes):
        return self

    def predict(self, votes):
        return self.predict_design(VoteDesign(votes))

    def predict_design(self, design):
        """Probability: the PRESENT share of the votes (NaN without votes), so a tie is exactly 0.5."""
        m = design.m
        present = design.matrix @ np.r_[np.zeros(m), np.ones(m)].astype(np.float32)
        total = design.matrix @ np.ones(2 * m, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return labels_from_probability(np.where(total > 0, present / total, np.nan))


class DawidSkene:
    """Class-conditional LF model fitted by (semi-supervised) EM; see the module docstring."""

    name = "dawid_skene"

    def __init__(self, smoothing=4.0, dependence=True, max_iter=300, tol=1e-4, class_balance=None):
        self.smoothing = smoothing  # Dirichlet pseudo-counts per LF and class
        self.dependence = dependence  # False: every LF counts as independent evidence
        self.max_iter = max_iter
        self.tol = tol  # on the largest change of a log-parameter between iterations
        self.class_balance = class_balance  # a known P(PRESENT) (bench/label_model_bench.py compares), else learned
        self.prior = None  # learned P(PRESENT)
        # theta[c, j, o]: P(LF j outputs o | class c); c: 0 absent / 1 present; o: 0 ABSENT / 1 PRESENT / 2 ABSTAIN
        self.theta = None
        self.weights = None  # per LF, 1 / the size of its dependence group
        self.groups = None  # dependence groups (lists of LF columns) of more than one LF
        self.iterations = 0

    def fit(self, votes, truth=None, warm_start=None):
        return self.fit_design(VoteDesign(votes), truth, warm_start)

    def fit_design(self, design, truth=None, warm_start=None):
        """truth: (n,) int8, non-zero rows clamped; warm_start: a fitted DawidSkene whose parameters (oriented by
        the clamped labels) and dependence groups are the starting point."""
        clamped = np.flatnonzero(truth) if truth is not None else np.empty(0, dtype=np.int64)
        clamped_present = (np.asarray(truth)[clamped] == PRESENT).astype(np.float32) if len(clamped) else None
        self._base = (design.column_totals.reshape(2, -1), design.n)
        if warm_start is not None:
            self.theta, self.prior = warm_start.theta.copy(), warm_start.prior
            self.weights, self.groups = warm_start.weights.copy(), warm_start.groups
            if len(clamped) and self._clamped_prefer_flip(design, clamped, clamped_present):
                self._flip()
        else:
            self._set_groups(dependent_groups(design.votes) if self.dependence and design.m > 1 else [], design.m)
            both_classes = len(clamped) and 0 < clamped_present.sum() < len(clamped)
            if both_classes:  # the labeled rows alone set the first parameters (and so the orientation)
                rows = design.matrix[clamped]
                self._m_step(clamped_present, rows, rows.sum(axis=0, dtype=np.float64), len(clamped))
            else:
                start = MajorityVote().predict_design(design).probability
                self._m_step(np.nan_to_num(start, nan=0.5), design.matrix, design.column_totals, design.n)
        q = self._run_em(design, clamped, clamped_present)
        if warm_start is None and self.dependence and design.m > 1:
            groups = dependent_groups(design.votes, q, self.prior)
            if groups != self.groups:
                self._set_groups(groups, design.m)
                q = self._run_em(design, clamped, clamped_present)
        if not len(clamped) and self._signal() < 0:
            self._flip()
        return self

    def _set_groups(self, groups, m):
        self.groups, self.weights = groups, np.ones(m)
        for group in groups:
            self.weights[group] = 1 / len(group)

    def _run_em(self, design, clamped, clamped_present):
        previous = self._log_parameters()
        for _ in range(self.max_iter):
            q = _sigmoid(self._log_odds(design))
            if len(clamped):
                q[clamped] = clamped_present
            self._m_step(q, design.matrix, design.column_totals, design.n)
            self.iterations += 1
            current = self._log_parameters()
            if np.abs(current - previous).max() < self.tol:
                break
            previous = current
        return q

    def _m_step(self, q, matrix, column_totals, n):
        # q @ matrix is a matrix-vector product: BLAS runs it at memory speed.
        present = (q @ matrix).astype(np.float64).reshape(2, -1)  # [ABSENT, PRESENT] vote mass in class present
        absent = column_totals.reshape(2, -1) - present
        mass_present = float(q.sum(dtype=np.float64))
        counts = np.stack([np.vstack([absent, n - mass_present - absent.sum(axis=0)]),
                           np.vstack([present, mass_present - present.sum(axis=0)])])  # (2 classes, 3 outcomes, m)
        base_totals, base_n = self._base
        outcome_rates = np.vstack([base_totals, base_n - base_totals.sum(axis=0)]) / base_n + 1e-6
        outcome_rates /= outcome_rates.sum(axis=0)
        smoothed = np.maximum(counts, 0) + self.smoothing * outcome_rates
        self.theta = (smoothed / smoothed.sum(axis=1, keepdims=True)).transpose(0, 2, 1)  # (2, m, 3)
        self.prior = self.class_balance if self.class_balance is not None else (mass_present + 1) / (n + 2)

    def _log_parameters(self):
        return np.append(np.log(self.theta).ravel(), np.log(self.prior / (1 - self.prior)))

    def _vote_weights(self):
        """(coefficients over the design's 2m columns, intercept) of the posterior log-odds."""
        log_ratio = np.log(self.theta[1]) - np.log(self.theta[0])  # (m, 3)
        weighted = log_ratio * self.weights[:, None]
        coefficients = np.concatenate([weighted[:, 0] - weighted[:, 2], weighted[:, 1] - weighted[:, 2]])
        intercept = np.log(self.prior / (1 - self.prior)) + weighted[:, 2].sum()
        return coefficients.astype(np.float32), np.float32(intercept)

    def _log_odds(self, design):
        coefficients, intercept = self._vote_weights()
        return design.matrix @ coefficients + intercept

    def _clamped_prefer_flip(self, design, clamped, clamped_present):
        """Whether the mirrored parameters (log-odds negated) make the clamped labels more likely."""
        signed = self._log_odds_rows(design.matrix[clamped]) * np.where(clamped_present == 1, 1, -1)
        return np.logaddexp(0, signed).sum() < np.logaddexp(0, -signed).sum()

    def _log_odds_rows(self, rows):
        coefficients, intercept = self._vote_weights()
        return rows @ coefficients + intercept

    def _signal(self):
        """How much more often LFs vote PRESENT under PRESENT and ABSENT under ABSENT than the other way round."""
        theta = self.theta
        return float(((theta[1, :, 1] - theta[0, :, 1] + theta[0, :, 0] - theta[1, :, 0]) * self.weights).sum())

    def _flip(self):
        self.theta, self.prior = self.theta[::-1].copy(), 1 - self.prior

    def predict_design(self, design):
        return labels_from_probability(_sigmoid(self._log_odds(design)))

    def predict(self, votes):
        return self.predict_design(VoteDesign(votes))

    def lf_accuracies(self):
        """Learned P(vote correct | the LF voted), per LF."""
        prior, theta = self.prior, self.theta
        correct = prior * theta[1, :, 1] + (1 - prior) * theta[0, :, 0]
        voted = prior * (1 - theta[1, :, 2]) + (1 - prior) * (1 - theta[0, :, 2])
        return correct / np.maximum(voted, 1e-12)


_DEPENDENCE_ROWS = 20_000  # a correlation's standard error is under 0.01 here; the thresholds are 0.5 and 0.8
WITHIN_CLASS_CORRELATION = 0.5
DUPLICATE_CORRELATION = 0.8


def _correlation(first, second, mass):
    """Correlation matrix from weighted sums of x and of x x^T over `mass` rows (0 for constant columns)."""
    mean = first / mass
    covariance = second / mass - np.outer(mean, mean)
    scale = np.sqrt(np.maximum(np.diag(covariance), 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.outer(scale, scale) > 1e-9, covariance / np.outer(scale, scale), 0.0)


def dependent_groups(votes, present_probability=None, prior=None):
    """Groups (lists of LF columns, size > 1) of LFs whose votes look like one source counted several times.

    Two LFs are linked when the correlation of their vote values (-1 / 0 / 1) exceeds DUPLICATE_CORRELATION
    over all rows (near-duplicates; found before any fit, so a family cannot first capture the posterior and
    then look independent given it), or, given a posterior, exceeds WITHIN_CLASS_CORRELATION within the
    classes (posterior-weighted, averaged by the prior): conditionally independent LFs score about 0 there
    however accurate they are. Groups are the connected components of the links.
    """
    step = -(-len(votes) // _DEPENDENCE_ROWS)
    x = np.asarray(votes[::step], dtype=np.float32)
    total_sum, total_square = x.sum(axis=0, dtype=np.float64), (x.T @ x).astype(np.float64)
    linked = _correlation(total_sum, total_square, len(x)) > DUPLICATE_CORRELATION
    if present_probability is not None:
        q = np.asarray(present_probability[::step], dtype=np.float32)
        present_sum, present_square = (q @ x).astype(np.float64), ((x * q[:, None]).T @ x).astype(np.float64)
        mass_present = float(q.sum(dtype=np.float64))
        within = np.zeros_like(total_square)
        for weight, mass, first, second in ((prior, mass_present, present_sum, present_square),
                                            (1 - prior, len(x) - mass_present, total_sum - present_sum,
                                             total_square - present_square)):
            if mass > 1:
                within += weight * _correlation(first, second, mass)
        linked |= within > WITHIN_CLASS_CORRELATION
    np.fill_diagonal(linked, False)
    component = list(range(x.shape[1]))  # union-find over m LFs: m is tens, a Python loop is fine

    def root(j):
        while component[j] != j:
            component[j] = component[component[j]]
            j = component[j]
        return j

    for a, b in zip(*np.nonzero(linked), strict=True):
        component[root(a)] = root(b)
    groups = {}
    for j in range(x.shape[1]):
        groups.setdefault(root(j), []).append(j)
    return [members for members in groups.values() if len(members) > 1]


# ---------------------------------------------------------------- scoring


def score_probabilities(probability, truth, fallback_present):
    """Accuracy, F1 (PRESENT positive), Brier score and counts of probabilities against truth (1 / -1).

    fallback_present: per row, the prior P(PRESENT) standing in where the candidate says nothing: a NaN
    probability becomes it, and a label-less row (tie or NaN) takes its majority class.
    """
    probability = np.asarray(probability, dtype=np.float64)
    fallback_present = np.broadcast_to(np.asarray(fallback_present, dtype=np.float64), probability.shape)
    filled = np.where(np.isnan(probability), fallback_present, probability)
    label = labels_from_probability(probability).label
    label = np.where(label == ABSTAIN, np.where(fallback_present > 0.5, PRESENT, ABSENT), label)
    positive = np.asarray(truth) == PRESENT
    predicted = label == PRESENT
    tp, fp = int((predicted & positive).sum()), int((predicted & ~positive).sum())
    fn, tn = int((~predicted & positive).sum()), int((~predicted & ~positive).sum())
    scored = len(probability)
    return {"accuracy": (tp + tn) / scored if scored else None,
            # 0 when neither truth nor prediction has a PRESENT (scikit-learn's zero_division default)
            "f1": 2 * tp / max(2 * tp + fp + fn, 1) if scored else None,
            "brier": float(np.mean((filled - positive) ** 2)) if scored else None,
            "scored": scored, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


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


# ---------------------------------------------------------------- LF diagnostics


def lf_diagnostics(model, votes, truth):
    """votes, truth: the dev rows'. Per LF: the model's conditionals and the precisions they imply, next to the
    dev precision and recall of its PRESENT and ABSENT votes (Wilson 95 % intervals); `check` names the sides
    whose implied precision lies outside the dev interval: the model does not believe the labels about this LF."""
    theta, prior = model.theta, model.prior
    group_of = {j: members for members in model.groups for j in members}
    rows = []
    for j in range(theta.shape[1]):
        absent, present = theta[0, j], theta[1, j]
        implied = {"present": prior * present[1] / max(prior * present[1] + (1 - prior) * absent[1], 1e-300),
                   "absent": (1 - prior) * absent[0] / max((1 - prior) * absent[0] + prior * present[0], 1e-300)}
        quality = metrics.vote_quality(votes[:, j], truth)
        check = []
        for side in ("present", "absent"):
            interval = quality[side]["precision"]["interval"]
            if interval is not None and not interval[0] <= implied[side] <= interval[1]:
                check.append(side)
        rows.append({
            "lf": j,
            "learned": {"p_present_given_present": float(present[1]), "p_absent_given_present": float(present[0]),
                        "p_abstain_given_present": float(present[2]), "p_present_given_absent": float(absent[1]),
                        "p_absent_given_absent": float(absent[0]), "p_abstain_given_absent": float(absent[2])},
            "implied_precision": {side: float(value) for side, value in implied.items()},
            "dev": {side: quality[side] for side in ("present", "absent")},
            "dependence_group": group_of.get(j, [j]),
            "weight": float(model.weights[j]),
            "check": check,
            "message": ("the model does not believe this LF: check it (implied precision outside the dev "
                        f"interval for its {' and '.join(check)} votes)") if check else None,
        })
    return rows


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
    return _sigmoid(design.matrix @ model.coef_[0].astype(np.float32) + np.float32(model.intercept_[0]))


def _prior_probability(design, present):
    return np.full(design.n, present.mean(), dtype=np.float32)


@dataclass
class ClassLabels:
    labels: Labels
    chosen: str
    reason: str
    candidates: dict
    lfs: list
    calibration: dict | None
    dependent_groups: list
    dev_probability: np.ndarray = field(repr=False)
    candidate_probability: dict = field(repr=False)

    def report(self):
        return {"chosen": self.chosen, "reason": self.reason, "candidates": self.candidates, "lfs": self.lfs,
                "calibration": self.calibration, "dependent_groups": self.dependent_groups}


def label_class_votes(votes, truth, dev_mask, seed=0, folds=DEFAULT_FOLDS, model_options=None):
    """Fit every candidate, score them on dev on equal terms, label all rows with the best (module docstring).

    model_options: keyword arguments of DawidSkene (e.g. dependence=False) for both EM candidates.
    """
    design = VoteDesign(votes)
    truth = np.asarray(truth, dtype=np.int8)
    dev_mask = np.asarray(dev_mask, dtype=bool)
    dev_rows = np.flatnonzero(dev_mask & (truth != ABSTAIN))
    options = model_options or {}
    unsupervised = DawidSkene(**options).fit_design(design)
    majority = MajorityVote().predict_design(design).probability

    def semi_supervised(rows):
        clamp = np.zeros(design.n, dtype=np.int8)
        clamp[rows] = truth[rows]
        return DawidSkene(**options).fit_design(design, clamp, warm_start=unsupervised)

    # Each candidate: (probability for every row given the labeled rows it may learn from, whether it learns).
    candidates = {
        "prior_only": (lambda rows: _prior_probability(design, truth[rows] == PRESENT), True),
        "majority_vote": (lambda rows: majority, False),
        "em_unsupervised": (lambda rows: unsupervised.predict_design(design).probability, False),
        "em_semi_supervised": (lambda rows: semi_supervised(rows).predict_design(design).probability, True),
        "logistic_regression": (lambda rows: _logistic_probability(design, rows, truth[rows] == PRESENT), True),
    }
    dev_probability = np.full(design.n, np.nan, dtype=np.float32)
    if len(dev_rows) < 2:
        chosen, reason = "em_unsupervised", "fewer than 2 labeled dev samples: nothing to score candidates on"
        scores = {name: score_probabilities([], [], []) for name in CANDIDATES}
        model, prior = unsupervised, unsupervised.prior
        # Without labels the learning candidates fall back to what the unsupervised model knows.
        candidate_probability = {name: candidates[name][0](dev_rows) for name in CANDIDATES if not candidates[name][1]}
        candidate_probability["prior_only"] = np.full(design.n, prior, dtype=np.float32)
    else:
        fold_of = _stratified_folds(truth[dev_rows], min(folds, len(dev_rows)), seed)
        # The training folds' PRESENT share: the fallback of every candidate on the held-out fold.
        fallback = np.empty(len(dev_rows))
        out_of_fold = {name: np.empty(len(dev_rows), dtype=np.float32) for name in CANDIDATES}
        for name, (fit_predict, learns) in candidates.items():
            if not learns:
                out_of_fold[name][:] = fit_predict(dev_rows)[dev_rows]
        for fold in range(fold_of.max() + 1):
            held_out = fold_of == fold
            training = dev_rows[~held_out]
            fallback[held_out] = (truth[training] == PRESENT).mean()
            for name, (fit_predict, learns) in candidates.items():
                if learns:
                    out_of_fold[name][held_out] = fit_predict(training)[dev_rows[held_out]]
        scores = {name: score_probabilities(out_of_fold[name], truth[dev_rows], fallback) for name in CANDIDATES}
        chosen = max(CANDIDATES, key=lambda name: (scores[name]["f1"], -CANDIDATES.index(name)))
        reason = (f"best dev F1 ({scores[chosen]['f1']:.4f} on {len(dev_rows)} samples, out-of-fold over "
                  f"{fold_of.max() + 1} folds; majority vote {scores['majority_vote']['f1']:.4f})")
        dev_probability[dev_rows] = np.where(np.isnan(out_of_fold[chosen]), fallback, out_of_fold[chosen])
        model, prior = semi_supervised(dev_rows), float((truth[dev_rows] == PRESENT).mean())
        # Every candidate refit on all dev labels: the chosen one labels the rows, the others are for comparison.
        candidate_probability = {name: candidates[name][0](dev_rows) for name in CANDIDATES
                                 if name != "em_semi_supervised"}
        candidate_probability["em_semi_supervised"] = model.predict_design(design).probability
    probability = candidate_probability[chosen]
    # Majority vote on rows without votes has no information: the prior there rather than NaN.
    labels = Labels(probability=np.where(np.isnan(probability), np.float32(prior), probability).astype(np.float32),
                    label=labels_from_probability(probability).label)
    return ClassLabels(
        labels=labels, chosen=chosen, reason=reason, candidates=scores,
        lfs=lf_diagnostics(model, design.votes[dev_mask], truth[dev_mask]),
        calibration=calibration_table(dev_probability, truth) if len(dev_rows) >= 2 else None,
        dependent_groups=[[int(j) for j in group] for group in model.groups], dev_probability=dev_probability,
        candidate_probability=candidate_probability)


# ---------------------------------------------------------------- the interface training_set_build uses today


def accuracy_on(labels, ground_truth):
    """Accuracy of non-abstain labels on labeled samples, with the counts (None when nothing to score)."""
    ground_truth = np.asarray(ground_truth)
    scored = (labels.label != ABSTAIN) & (ground_truth != ABSTAIN)
    if not scored.any():
        return {"accuracy": None, "scored": 0}
    return {"accuracy": float((labels.label[scored] == ground_truth[scored]).mean()), "scored": int(scored.sum())}


def choose_label_model(votes, dev_votes=None, dev_truth=None):
    """Until training_set_build calls label_class_votes: unsupervised DawidSkene or majority vote, whichever has
    the better dev accuracy. Returns (model, report). Remove with that switch."""
    dawid_skene = DawidSkene().fit(votes)
    majority = MajorityVote()
    report = {"chosen": dawid_skene.name, "dev": None}
    if dev_votes is not None and dev_truth is not None and (np.asarray(dev_truth) != ABSTAIN).any():
        scores = {model.name: accuracy_on(model.predict(dev_votes), dev_truth) for model in (dawid_skene, majority)}
        report["dev"] = scores
        ds, mv = (scores[n]["accuracy"] for n in (dawid_skene.name, majority.name))
        if ds is not None and mv is not None and mv > ds:
            report["chosen"] = majority.name
            return majority, report
    return dawid_skene, report
