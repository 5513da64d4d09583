"""The numbers behind a labeling function's histogram: votes from thresholds, precision / recall with
Wilson intervals, coverage, suggested thresholds. Pure numpy, no Django.

Encodings: a vote or a ground truth is an int8, 1 = PRESENT, -1 = ABSENT, 0 = ABSTAIN / unlabeled.
"""

import math

import numpy as np

from imagestudio.common.votes import ABSENT, ABSTAIN, PRESENT  # noqa: F401  (re-exported for the maths)

Z95 = 1.959963984540054


def votes_from_scores(scores, low=None, high=None, invert=False):
    """score >= high -> PRESENT, score <= low -> ABSENT, else ABSTAIN; `invert` swaps the two directions.

    A missing threshold makes the LF one-sided. NaN scores (no score for the sample) abstain.
    """
    scores = np.asarray(scores, dtype=np.float32)
    votes = np.zeros(len(scores), dtype=np.int8)
    if high is not None:
        votes[scores >= high] = ABSENT if invert else PRESENT
    if low is not None:
        votes[scores <= low] = PRESENT if invert else ABSENT
    return votes


def sigmoid(scores):
    """Probability of a logistic model's decision-function scores."""
    return 1 / (1 + np.exp(-np.asarray(scores, dtype=np.float64)))


def wilson_interval(successes, trials, z=Z95):
    """The Wilson score interval of a proportion (None when there are no trials)."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def rate(successes, trials):
    successes, trials = int(successes), int(trials)
    return {"value": successes / trials if trials else None, "successes": successes, "trials": trials,
            "interval": wilson_interval(successes, trials)}


def vote_quality(votes, ground_truth):
    """Precision and recall of the PRESENT and of the ABSENT votes against ground truth, and coverage."""
    votes, ground_truth = np.asarray(votes), np.asarray(ground_truth)
    labeled = ground_truth != ABSTAIN
    result = {
        "votes": {"present": int((votes == PRESENT).sum()), "absent": int((votes == ABSENT).sum()),
                  "abstain": int((votes == ABSTAIN).sum())},
        "coverage": rate((votes != ABSTAIN).sum(), len(votes)),
        "labeled": int(labeled.sum()),
    }
    for name, side in (("present", PRESENT), ("absent", ABSENT)):
        voted = (votes == side) & labeled
        correct = voted & (ground_truth == side)
        result[name] = {"precision": rate(correct.sum(), voted.sum()),
                        "recall": rate(correct.sum(), (ground_truth == side).sum())}
    return result


def covered(votes):
    """Samples (rows of an n samples x m LFs vote matrix) on which at least one LF voted."""
    return (np.asarray(votes) != ABSTAIN).any(axis=1)


def conflicted(votes):
    """Samples on which one LF votes PRESENT and another ABSENT."""
    votes = np.asarray(votes)
    return (votes == PRESENT).any(axis=1) & (votes == ABSENT).any(axis=1)


def vote_precision(votes, ground_truth):
    """How often an LF's votes on labeled samples match the ground truth."""
    votes, ground_truth = np.asarray(votes), np.asarray(ground_truth)
    scored = (votes != ABSTAIN) & (ground_truth != ABSTAIN)
    return rate((scored & (votes == ground_truth)).sum(), scored.sum())


def lf_vote_stats(votes, ground_truth):
    """Per LF (a column of the n samples x m LFs vote matrix of one class): polarity, coverage, overlaps and
    conflicts with the other LFs, precision against ground truth (snorkel's LFAnalysis)."""
    votes = np.asarray(votes)
    n = len(votes)
    # Votes per sample over all LFs, computed once: each LF then costs O(n), not O(n m).
    voted_count = (votes != ABSTAIN).sum(axis=1)
    present_count, absent_count = (votes == PRESENT).sum(axis=1), (votes == ABSENT).sum(axis=1)
    rows = []
    for column in votes.T:
        mine, present, absent = column != ABSTAIN, column == PRESENT, column == ABSENT
        conflict = (present & (absent_count > 0)) | (absent & (present_count > 0))
        rows.append({
            "polarity": [word for flag, word in ((present, "PRESENT"), (absent, "ABSENT")) if flag.any()],
            "coverage": rate(mine.sum(), n),
            "overlaps": rate((mine & (voted_count - mine > 0)).sum(), n),
            "conflicts": rate(conflict.sum(), n),
            "precision": vote_precision(column, ground_truth),
            "votes": {"present": int(present.sum()), "absent": int(absent.sum())},
        })
    return rows


def histogram(scores, ground_truth, bins, value_range=None):
    """Bin edges and counts per bin split by ground truth (present / absent / unlabeled)."""
    scores, ground_truth = np.asarray(scores, dtype=np.float64), np.asarray(ground_truth)
    finite = np.isfinite(scores)
    scores, ground_truth = scores[finite], ground_truth[finite]
    if value_range is None:
        value_range = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    low, high = value_range
    if high <= low:  # one distinct value: give the bins some width around it
        low, high = low - 0.5, high + 0.5
    counts = {}
    for name, side in (("present", PRESENT), ("absent", ABSENT), ("unlabeled", ABSTAIN)):
        # bins + range lets numpy bin uniformly without sorting (explicit edges make it sort)
        counts[name] = np.histogram(scores[ground_truth == side], bins=bins, range=(low, high))[0].astype(int).tolist()
    return {"edges": np.linspace(low, high, bins + 1).tolist(), "counts": counts}


def _best_cut(scores, positive, descending):
    """For the rule "score >= t" (descending) or "score <= t", precision and recall at every cut t."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    ordered, hits = scores[order], positive[order]
    true_positives = np.cumsum(hits)
    taken = np.arange(1, len(ordered) + 1)
    # Only cut between distinct scores: ties all fall on the same side of a threshold.
    last_of_value = np.r_[ordered[1:] != ordered[:-1], True]
    thresholds = ordered[last_of_value]
    tp, n = true_positives[last_of_value], taken[last_of_value]
    precision = tp / n
    recall = tp / max(int(positive.sum()), 1)
    return thresholds, precision, recall


def _pick(thresholds, precision, recall, index):
    if index is None:
        return None
    p, r = float(precision[index]), float(recall[index])
    return {"threshold": float(thresholds[index]), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0}


def suggest_thresholds(scores, ground_truth, invert=False, min_precision=0.9):
    """Suggested `high` and `low`: the best F1 cut, and the best-recall cut with precision >= min_precision.

    Computed on the labeled samples; None where the class has no labeled example of that side.
    """
    scores, ground_truth = np.asarray(scores, dtype=np.float64), np.asarray(ground_truth)
    keep = (ground_truth != ABSTAIN) & np.isfinite(scores)
    scores, ground_truth = scores[keep], ground_truth[keep]
    suggestions = {}
    # Which label a high score votes for, and which a low score votes for.
    sides = {"high": (ABSENT if invert else PRESENT, True), "low": (PRESENT if invert else ABSENT, False)}
    for name, (side, descending) in sides.items():
        positive = ground_truth == side
        if not positive.any():
            suggestions[name] = {"best_f1": None, "best_recall_at_precision": None}
            continue
        thresholds, precision, recall = _best_cut(scores, positive, descending)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
        precise = np.flatnonzero(precision >= min_precision)
        suggestions[name] = {
            "best_f1": _pick(thresholds, precision, recall, int(np.argmax(f1))),
            "best_recall_at_precision": _pick(thresholds, precision, recall,
                                              int(precise[np.argmax(recall[precise])]) if len(precise) else None),
        }
    suggestions["min_precision"] = min_precision
    return suggestions
