"""A scorer's PR and ROC curves on labeled samples at a bounded number of exact points, their areas, and the
confusion at a threshold. Pure numpy, no Django.

Ground truth is int8: 1 PRESENT (positive), -1 ABSENT (negative), 0 unlabeled (left out); the rule is
score >= threshold. The full curve has a point at every distinct labeled score. Kept: the highest threshold,
and for k = 1..K with K = (points - 1) // 2 the first threshold from the top whose true positives reach
k / K of the positives (even recall steps, for the PR curve) and the first whose false positives reach k / K
of the negatives (even false-positive-rate steps, for the ROC curve): at most `points` points, the last one
every sample's, each an exact point of the full curve (its counts are the counts at its threshold).
"""

import numpy as np

from imagestudio.common.votes import ABSTAIN, PRESENT


def labeled_scores(scores, truth):
    """(finite scores, positive flags) of the labeled samples."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    keep = (truth != ABSTAIN) & np.isfinite(scores)
    return scores[keep], truth[keep] == PRESENT


def full_curve(scores, positive):
    """(thresholds descending, true positives, false positives) of the rule score >= threshold at every
    distinct score."""
    order = np.argsort(-scores, kind="stable")
    ordered, hits = scores[order], positive[order]
    last_of_value = np.r_[ordered[1:] != ordered[:-1], True] if len(ordered) else np.zeros(0, dtype=bool)
    return ordered[last_of_value], np.cumsum(hits)[last_of_value], np.cumsum(~hits)[last_of_value]


def kept_points(tp, fp, points):
    """Indices (ascending) of the full curve's points that the chart keeps (see the module notes)."""
    if not len(tp):
        return np.zeros(0, dtype=np.int64)
    steps = max((points - 1) // 2, 1)
    kept = [np.zeros(1, dtype=np.int64)]
    for counts in (tp, fp):
        total = int(counts[-1])
        if total:
            targets = (np.arange(1, steps + 1) * total + steps - 1) // steps  # ceil(k * total / steps)
            kept.append(np.searchsorted(counts, targets, side="left"))
    return np.unique(np.concatenate(kept))


def _rates(counts, total):
    return (counts / total).tolist() if total else None


def binary_curves(scores, truth, points=101):
    """The chart's PR / ROC points, both areas computed on the full curve (scikit-learn's definitions:
    average precision and the trapezoidal ROC AUC), and the labeled counts."""
    scores, positive = labeled_scores(scores, truth)
    thresholds, tp, fp = full_curve(scores, positive)
    positives, negatives = int(positive.sum()), int((~positive).sum())
    rows = kept_points(tp, fp, points)
    recall = tp / positives if positives else None
    return {
        "labeled": positives + negatives, "positives": positives, "negatives": negatives,
        "curve": {"thresholds": thresholds[rows].tolist(), "tp": tp[rows].tolist(), "fp": fp[rows].tolist(),
                  "precision": (tp[rows] / (tp[rows] + fp[rows])).tolist(), "recall": _rates(tp[rows], positives),
                  "fpr": _rates(fp[rows], negatives)},
        "pr_auc": float(np.sum(np.diff(np.r_[0, recall]) * tp / (tp + fp))) if positives else None,
        "roc_auc": (float(np.trapezoid(np.r_[0, recall], np.r_[0, fp / negatives]))
                    if positives and negatives else None),
    }


def confusion(scores, truth, threshold):
    """True / false positives and negatives of score >= threshold on the labeled samples."""
    scores, positive = labeled_scores(scores, truth)
    predicted = scores >= threshold
    return {"tp": int((predicted & positive).sum()), "fp": int((predicted & ~positive).sum()),
            "fn": int((~predicted & positive).sum()), "tn": int((~predicted & ~positive).sum())}
