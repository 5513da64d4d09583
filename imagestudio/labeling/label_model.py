"""The label model of one class: LF votes to P(PRESENT | votes). Pure numpy, no Django.

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
explain), or above 0.5 within each class on the rows with ground truth (semi-supervised fits, at least
LABELED_DEPENDENCE_ROWS of each class): there the class is known, so two LFs that follow something else (a
visual cluster two image exemplars share) cannot pass for the class by capturing the unlabeled posterior, which
makes them look independent given it. Connected components of the links form groups, and every member's
log-likelihood term is divided by its group's size (EM continues when the groups changed; the labeled links are
kept through every regrouping and a warm start). The conditionals are still learned per LF.
Why not a dependency model: a family's joint outcome table has 3^k cells, unidentifiable from a few hundred
labels; "one vote per family" is exact for identical copies and errs on the cautious side otherwise, and it
keeps the E-step a single matrix-vector product.
"""


from dataclasses import dataclass

import numpy as np

from imagestudio.common.votes import ABSENT, PRESENT

_LOG_ODDS_LIMIT = 30.0  # exp() stays finite in float32, probabilities still round to 0 / 1
_BLOCK_BYTES = 1 << 20  # of the vote design: a block stays in the CPU cache between two passes over it


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


def sigmoid_probability(log_odds):
    return (1 / (1 + np.exp(-np.clip(log_odds, -_LOG_ODDS_LIMIT, _LOG_ODDS_LIMIT)))).astype(np.float32)


def _sigmoid_in_place(log_odds):
    """sigmoid_probability of a float32 array, written over it (no temporaries)."""
    np.clip(log_odds, -_LOG_ODDS_LIMIT, _LOG_ODDS_LIMIT, out=log_odds)
    np.negative(log_odds, out=log_odds)
    np.exp(log_odds, out=log_odds)
    log_odds += 1
    np.reciprocal(log_odds, out=log_odds)


class VoteDesign:
    """Votes as one (n, 2m) float32 matrix of [ABSENT | PRESENT] indicators (ABSTAIN is the rest), so an EM step
    is one matrix-vector product each way; built once and shared by every fit on the same votes."""

    def __init__(self, votes):
        self.votes = np.asarray(votes, dtype=np.int8)
        self.n, self.m = self.votes.shape
        self.matrix = np.empty((self.n, 2 * self.m), dtype=np.float32)
        self.column_totals = np.zeros(2 * self.m, dtype=np.float64)
        # Block by block, each block summed while in cache; a block's float32 count of ones is exact.
        ones = np.ones(self.block_rows, dtype=np.float32)
        for start, stop in self.blocks():
            rows, block = self.votes[start:stop], self.matrix[start:stop]
            np.equal(rows, ABSENT, out=block[:, :self.m], casting="unsafe")
            np.equal(rows, PRESENT, out=block[:, self.m:], casting="unsafe")
            self.column_totals += ones[:stop - start] @ block

    @property
    def block_rows(self):
        """Rows of a block of the matrix that fits in the CPU cache (EM reads each block once per iteration)."""
        return max(1, _BLOCK_BYTES // (4 * max(2 * self.m, 1)))

    def blocks(self):
        return [(start, min(start + self.block_rows, self.n)) for start in range(0, self.n, self.block_rows)]


class MajorityVote:
    name = "majority_vote"

    def fit(self, votes):
        return self

    def predict(self, votes):
        return self.predict_design(VoteDesign(votes))

    def predict_design(self, design):
        return labels_from_probability(self.probability(design))

    @staticmethod
    def probability(design):
        """The PRESENT share of the votes (NaN without votes), so a tie is exactly 0.5."""
        m = design.m
        present = design.matrix @ np.r_[np.zeros(m), np.ones(m)].astype(np.float32)
        total = design.matrix @ np.ones(2 * m, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, present / total, np.nan)


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
        grouping = self.dependence and design.m > 1
        # Dependence measured on the labeled rows, where the class is known, is kept through every regrouping.
        labeled_groups = labeled_dependent_groups(design.votes[clamped], clamped_present) if grouping else []
        if warm_start is not None:
            self.theta, self.prior = warm_start.theta.copy(), warm_start.prior
            self._set_groups(merge_groups(design.m, warm_start.groups, labeled_groups), design.m)
            if len(clamped) and self._clamped_prefer_flip(design, clamped, clamped_present):
                self._flip()
        else:
            self._set_groups(merge_groups(design.m, dependent_groups(design.votes), labeled_groups) if grouping
                             else [], design.m)
            self._first_parameters(design, clamped, clamped_present)
        q = self._run_em(design, clamped, clamped_present)
        if warm_start is None and grouping:
            groups = merge_groups(design.m, dependent_groups(design.votes, q, self.prior), labeled_groups)
            if groups != self.groups:
                self._set_groups(groups, design.m)
                q = self._run_em(design, clamped, clamped_present)
        if not len(clamped) and self._signal() < 0:
            self._flip()
        return self

    def _first_parameters(self, design, clamped, clamped_present):
        """The labeled rows alone set the first parameters (and so the orientation) where they hold both
        classes; else majority vote does."""
        if len(clamped) and 0 < clamped_present.sum() < len(clamped):
            rows = design.matrix[clamped]
            self._m_step(*_vote_mass(clamped_present, rows), rows.sum(axis=0, dtype=np.float64), len(clamped))
        else:
            start = np.nan_to_num(MajorityVote.probability(design), nan=0.5).astype(np.float32)
            self._m_step(*_vote_mass(start, design.matrix), design.column_totals, design.n)

    def _set_groups(self, groups, m):
        self.groups, self.weights = groups, np.ones(m)
        for group in groups:
            self.weights[group] = 1 / len(group)

    def _run_em(self, design, clamped, clamped_present):
        previous = self._log_parameters()
        q = np.empty(design.n, dtype=np.float32)
        bounds = design.blocks()
        clamped_bounds = np.searchsorted(clamped, [b for bound in bounds for b in bound]).reshape(-1, 2)
        clamped_values = clamped_present if len(clamped) else np.empty(0, dtype=np.float32)
        for _ in range(self.max_iter):
            coefficients, intercept = self._vote_weights()
            present = np.zeros(design.matrix.shape[1], dtype=np.float64)
            mass_present = 0.0
            # E-step and the M-step's sums block by block: each block of the design is read from memory once.
            for (start, stop), (low, high) in zip(bounds, clamped_bounds, strict=True):
                rows, q_rows = design.matrix[start:stop], q[start:stop]
                np.matmul(rows, coefficients, out=q_rows)
                q_rows += intercept
                _sigmoid_in_place(q_rows)
                q[clamped[low:high]] = clamped_values[low:high]
                present += q_rows @ rows
                mass_present += float(q_rows.sum(dtype=np.float64))
            self._m_step(present, mass_present, design.column_totals, design.n)
            self.iterations += 1
            current = self._log_parameters()
            if np.abs(current - previous).max() < self.tol:
                break
            previous = current
        return q

    def _m_step(self, present, mass_present, column_totals, n):
        """Parameters from the vote mass under class PRESENT: `present`, per design column, the posterior-weighted
        count of [ABSENT, PRESENT] votes; `mass_present`, the posterior mass of the class."""
        present = present.reshape(2, -1)
        absent = column_totals.reshape(2, -1) - present
        counts = np.stack([np.vstack([absent, n - mass_present - absent.sum(axis=0)]),
                           np.vstack([present, mass_present - present.sum(axis=0)])])  # (2 classes, 3 outcomes, m)
        base_totals, base_n = self._base
        outcome_rates = np.vstack([base_totals, base_n - base_totals.sum(axis=0)]) / max(base_n, 1) + 1e-6
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
        return labels_from_probability(sigmoid_probability(self._log_odds(design)))

    def predict(self, votes):
        return self.predict_design(VoteDesign(votes))

    def lf_accuracies(self):
        """Learned P(vote correct | the LF voted), per LF."""
        prior, theta = self.prior, self.theta
        correct = prior * theta[1, :, 1] + (1 - prior) * theta[0, :, 0]
        voted = prior * (1 - theta[1, :, 2]) + (1 - prior) * (1 - theta[0, :, 2])
        return correct / np.maximum(voted, 1e-12)


def _vote_mass(q, matrix):
    """(q-weighted vote count of each design column, total mass of q): what the M-step needs."""
    return (q @ matrix).astype(np.float64), float(q.sum(dtype=np.float64))


_DEPENDENCE_ROWS = 20_000  # a correlation's standard error is under 0.01 here; the thresholds are 0.5 and 0.8
WITHIN_CLASS_CORRELATION = 0.5
DUPLICATE_CORRELATION = 0.8
LABELED_DEPENDENCE_ROWS = 30  # of each class; the correlation's standard error is then under 0.19


def _correlation(first, second, mass):
    """Correlation matrix from weighted sums of x and of x x^T over `mass` rows (0 for constant columns)."""
    mass = max(mass, 1e-12)  # no rows: every column is constant
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
    step = max(1, -(-len(votes) // _DEPENDENCE_ROWS))  # 1 without rows: a dataset with no samples yet
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
    return _components(x.shape[1], zip(*np.nonzero(linked), strict=True))


def labeled_dependent_groups(votes, present):
    """dependent_groups of labeled rows (present: 1 / 0 per row), their class known: the within-class rule
    on the truth itself, where a family of LFs cannot pass for the class. Needs LABELED_DEPENDENCE_ROWS of each
    class (a correlation's standard error is about 1 / sqrt(rows)); [] otherwise."""
    if present is None:
        return []
    present = np.asarray(present, dtype=np.float32)
    positives = int(present.sum())
    if min(positives, len(present) - positives) < LABELED_DEPENDENCE_ROWS:
        return []
    return dependent_groups(votes, present, positives / len(present))


def merge_groups(m, *group_lists):
    """The connected components (size > 1) of the union of several groupings of m LFs."""
    return _components(m, ((group[0], j) for groups in group_lists for group in groups for j in group[1:]))


def _components(m, links):
    """Groups (size > 1, ascending members, in order of their first member) of the links' connected components."""
    component = list(range(m))  # union-find over m LFs: m is tens, a Python loop is fine

    def root(j):
        while component[j] != j:
            component[j] = component[component[j]]
            j = component[j]
        return j

    for a, b in links:
        component[root(a)] = root(b)
    groups = {}
    for j in range(m):
        groups.setdefault(root(j), []).append(j)
    return [members for members in groups.values() if len(members) > 1]
