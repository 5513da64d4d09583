"""Aggregating LF votes into probabilistic labels for one class. Pure numpy, no Django.

Votes: an (n samples x m LFs) int8 matrix, 1 PRESENT, -1 ABSENT, 0 ABSTAIN.

- `MajorityVote`: the sign of the vote sum; ties and samples without votes abstain.
- `DawidSkene`: the class prior and, per LF and true class, the distribution of its three outcomes,
  fitted by EM without ground truth (Dawid & Skene 1979). With conditionally independent LFs it weighs
  each LF by its learned accuracy and uses the learned class balance, which majority vote cannot.
"""

from dataclasses import dataclass

import numpy as np

PRESENT, ABSENT, ABSTAIN = 1, -1, 0
_SMOOTHING = 1e-3


@dataclass
class Labels:
    probability: np.ndarray  # float32 P(PRESENT | votes); NaN where no LF voted
    label: np.ndarray  # int8 1 / -1 / 0 (ABSTAIN where no LF voted, or a majority tie)


def _covered(votes):
    return (votes != ABSTAIN).any(axis=1)


class MajorityVote:
    name = "majority_vote"

    def fit(self, votes):
        return self

    def predict(self, votes):
        votes = np.asarray(votes, dtype=np.int8)
        present = (votes == PRESENT).sum(axis=1)
        absent = (votes == ABSENT).sum(axis=1)
        total = present + absent
        with np.errstate(invalid="ignore", divide="ignore"):
            probability = np.where(total > 0, present / np.maximum(total, 1), np.nan).astype(np.float32)
        label = np.sign(present - absent).astype(np.int8)
        return Labels(probability=probability, label=label)


class DawidSkene:
    name = "dawid_skene"

    def __init__(self, max_iter=100, tol=1e-8, class_balance=None):
        self.max_iter = max_iter
        self.tol = tol
        self.class_balance = class_balance  # a known P(PRESENT), or None to learn it
        self.prior = None
        # theta[c, j, o]: P(LF j outputs o | class c), c: 0 ABSENT / 1 PRESENT, o: 0 ABSENT / 1 PRESENT / 2 ABSTAIN
        self.theta = None
        self.iterations = 0

    @staticmethod
    def _design(votes):
        """One-hot outcomes as one (n, 3m) float32 matrix, columns [ABSENT | PRESENT | ABSTAIN] per LF, so each
        EM step is a single matrix product."""
        votes = np.asarray(votes, dtype=np.int8)
        return np.concatenate([votes == ABSENT, votes == PRESENT, votes == ABSTAIN], axis=1).astype(np.float32)

    def fit(self, votes):
        votes = np.asarray(votes, dtype=np.int8)
        covered = _covered(votes)
        design = self._design(votes[covered])
        self._column_totals = design.sum(axis=0, dtype=np.float64)
        # Start from majority vote (soft): LFs are assumed better than chance on average.
        start = MajorityVote().predict(votes[covered]).probability
        q = np.where(np.isnan(start), 0.5, start).astype(np.float32)
        previous = -np.inf
        for iteration in range(1, self.max_iter + 1):
            self._m_step(design, q)
            q, log_likelihood = self._e_step(design)
            self.iterations = iteration
            if log_likelihood - previous < self.tol * max(1.0, abs(log_likelihood)):
                break
            previous = log_likelihood
        return self

    def _m_step(self, design, q):
        # Matrix-vector products only: BLAS runs these at memory speed, unlike skinny matrix products.
        present = (q @ design).astype(np.float64)
        absent = self._column_totals - present
        self.prior = self.class_balance if self.class_balance is not None else float(q.mean())
        m = design.shape[1] // 3
        counts = np.stack([absent, present]).reshape(2, 3, m).transpose(0, 2, 1) + _SMOOTHING
        self.theta = counts / counts.sum(axis=-1, keepdims=True)  # (2, m, 3)

    def _e_step(self, design):
        log_theta = np.log(self.theta).transpose(0, 2, 1).reshape(2, -1).astype(np.float32)  # as _design's columns
        prior = np.clip(self.prior, 1e-6, 1 - 1e-6)
        absent = design @ log_theta[0] + np.float32(np.log(1 - prior))
        present = design @ log_theta[1] + np.float32(np.log(prior))
        log_odds = present - absent
        q = (1 / (1 + np.exp(-log_odds))).astype(np.float32)
        log_evidence = absent + np.logaddexp(0, log_odds)
        return q, float(log_evidence.sum(dtype=np.float64))

    def predict(self, votes):
        votes = np.asarray(votes, dtype=np.int8)
        covered = _covered(votes)
        probability = np.full(len(votes), np.nan, dtype=np.float32)
        q, _ = self._e_step(self._design(votes[covered]))
        probability[covered] = q
        label = np.zeros(len(votes), dtype=np.int8)
        label[covered] = np.where(q >= 0.5, PRESENT, ABSENT)
        return Labels(probability=probability, label=label)

    def lf_accuracies(self):
        """Learned P(vote correct | the LF voted), per LF."""
        prior = self.prior
        correct = prior * self.theta[1, :, 1] + (1 - prior) * self.theta[0, :, 0]
        voted = prior * (1 - self.theta[1, :, 2]) + (1 - prior) * (1 - self.theta[0, :, 2])
        return correct / np.maximum(voted, 1e-12)


def accuracy_on(labels, ground_truth):
    """Accuracy of non-abstain labels on labeled samples, with the counts (None when nothing to score)."""
    ground_truth = np.asarray(ground_truth)
    scored = (labels.label != ABSTAIN) & (ground_truth != ABSTAIN)
    if not scored.any():
        return {"accuracy": None, "scored": 0}
    return {"accuracy": float((labels.label[scored] == ground_truth[scored]).mean()), "scored": int(scored.sum())}


def choose_label_model(votes, dev_votes=None, dev_truth=None):
    """Fit Dawid-Skene; where dev ground truth exists, score it and majority vote there and keep the better.

    Returns (chosen model, report with both scores and the reason of the choice).
    """
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
