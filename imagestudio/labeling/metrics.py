"""The numbers behind a labeling function's histogram: votes from thresholds, precision / recall with
Wilson intervals, coverage, suggested thresholds. Pure numpy, no Django.

Encodings: a vote or a ground truth is an int8, 1 = PRESENT, -1 = ABSENT, 0 = ABSTAIN / unlabeled.
"""

import math
from dataclasses import dataclass

import numpy as np

from imagestudio.common.votes import ABSENT, ABSTAIN, PRESENT  # noqa: F401  (re-exported for the maths)

Z95 = 1.959963984540054


def votes_from_scores(scores, low=None, high=None, invert=False):
    """score >= high -> PRESENT, score <= low -> ABSENT, else ABSTAIN; `invert` swaps the two directions.

    A missing threshold makes the LF one-sided. NaN scores (no score for the sample) abstain. Scores compare
    in float64, so a threshold is used exactly as given (a histogram edge sent back selects what it counted).
    """
    scores = np.asarray(scores)
    if scores.dtype != np.float32:
        scores = scores.astype(np.float64)
    votes = np.zeros(len(scores), dtype=np.int8)
    if high is not None:
        votes[scores >= _as_dtype_bound(high, scores.dtype, up=True)] = ABSENT if invert else PRESENT
    if low is not None:
        votes[scores <= _as_dtype_bound(low, scores.dtype, up=False)] = PRESENT if invert else ABSENT
    return votes


def _as_dtype_bound(threshold, dtype, up):
    """The threshold as a value of the scores' dtype that selects exactly the scores the float64 comparison
    would: for float32 scores, the nearest float32 at or above (`up`) or at or below the threshold."""
    if dtype != np.float32:
        return np.float64(threshold)
    bound = np.float32(threshold)
    if up and float(bound) < threshold:
        bound = np.nextafter(bound, np.float32(np.inf))
    elif not up and float(bound) > threshold:
        bound = np.nextafter(bound, np.float32(-np.inf))
    return bound


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
    # Exactly 0 with no success and 1 with no failure, where rounding left 5.6e-17 and 0.9999999999999999.
    return [0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == trials else min(1.0, centre + half)]


def rate(successes, trials):
    successes, trials = int(successes), int(trials)
    return {"value": successes / trials if trials else None, "successes": successes, "trials": trials,
            "interval": wilson_interval(successes, trials)}


def vote_quality(votes, ground_truth):
    """Precision and recall of the PRESENT and of the ABSENT votes against ground truth, and coverage."""
    votes, ground_truth = np.asarray(votes, dtype=np.int8), np.asarray(ground_truth, dtype=np.int8)
    # one pass: counts[vote + 1, truth + 1] for the 3 x 3 outcomes
    counts = np.bincount((votes * 3 + ground_truth).astype(np.intp) + 4, minlength=9).reshape(3, 3)
    per_vote, per_truth = counts.sum(axis=1), counts.sum(axis=0)
    index = {ABSENT: 0, ABSTAIN: 1, PRESENT: 2}
    result = {
        "votes": {"present": int(per_vote[2]), "absent": int(per_vote[0]), "abstain": int(per_vote[1])},
        "coverage": rate(per_vote[0] + per_vote[2], len(votes)),
        "labeled": int(per_truth[0] + per_truth[2]),
    }
    for name, side in (("present", PRESENT), ("absent", ABSENT)):
        row = counts[index[side]]
        correct = row[index[side]]
        result[name] = {"precision": rate(correct, row[0] + row[2]), "recall": rate(correct, per_truth[index[side]])}
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


def lf_vote_stats(votes, ground_truth, counted=None):
    """Per LF (a column of the n samples x m LFs vote matrix of one class): polarity, coverage, overlaps and
    conflicts with the other LFs that `counted` (a bool per column; default all) marks, precision against ground
    truth (snorkel's LFAnalysis)."""
    votes = np.asarray(votes)
    n, m = votes.shape
    counted = np.ones(m, dtype=bool) if counted is None else np.asarray(counted, dtype=bool)
    # Votes per sample over the counted LFs, computed once: each LF then costs O(n), not O(n m).
    others = votes[:, counted]
    voted_count = (others != ABSTAIN).sum(axis=1)
    present_count, absent_count = (others == PRESENT).sum(axis=1), (others == ABSENT).sum(axis=1)
    rows = []
    for column, is_counted in zip(votes.T, counted, strict=True):
        mine, present, absent = column != ABSTAIN, column == PRESENT, column == ABSENT
        conflict = (present & (absent_count > 0)) | (absent & (present_count > 0))
        rows.append({
            "polarity": [word for flag, word in ((present, "PRESENT"), (absent, "ABSENT")) if flag.any()],
            "coverage": rate(mine.sum(), n),
            "overlaps": rate((mine & (voted_count - (mine & is_counted) > 0)).sum(), n),
            "conflicts": rate(conflict.sum(), n),
            "precision": vote_precision(column, ground_truth),
            "votes": {"present": int(present.sum()), "absent": int(absent.sum())},
        })
    return rows


GROUND_TRUTH_ROWS = (("present", PRESENT), ("absent", ABSENT), ("unlabeled", ABSTAIN))
THRESHOLD_OPERATORS = (">=", "<=")  # the rule `high` sets (score >= high), the one `low` sets (score <= low)


def _edges(scores, bins):
    """`bins` + 1 strictly increasing equal-width edges over the (finite) scores' range, widened around a range
    too narrow to split (e.g. one distinct value)."""
    low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    pad = 0.5
    while True:
        edges = np.linspace(low, high, bins + 1)
        if np.all(np.diff(edges) > 0):
            return edges
        low, high, pad = low - pad, high + pad, pad * 2


@dataclass(frozen=True)
class Binned:
    """Scores binned once, by ground truth row (GROUND_TRUTH_ROWS): the histogram and the sweep read it.
    Bin k holds edges[k] <= score < edges[k + 1], the last bin also its right edge (numpy's histogram rule)."""

    edges: np.ndarray  # bins + 1, strictly increasing
    per_bin: np.ndarray  # (3, bins): finite scores per bin
    per_edge: np.ndarray  # (3, bins + 1): finite scores equal to each edge
    totals: np.ndarray  # (3,): samples per ground truth row, those without a score (NaN) included


_ROW_OF_TRUTH = np.array([1, 2, 0], dtype=np.intp)  # ground truth -1 / 0 / 1 -> row absent 1, unlabeled 2, present 0


def bin_scores(scores, ground_truth, bins) -> Binned:
    """O(n): each score's bin comes from arithmetic, settled against the edges; nothing is sorted.

    float32 scores (the scan's) are compared in float32 with each float64 edge's float32 ceiling, which selects
    exactly what the float64 comparison would, at half the memory traffic."""
    scores, ground_truth = np.asarray(scores), np.asarray(ground_truth)
    if scores.dtype != np.float32:
        scores = scores.astype(np.float64)
    row = _ROW_OF_TRUTH[ground_truth + 1]
    finite = np.isfinite(scores)
    totals = None
    if not finite.all():
        totals = np.bincount(row, minlength=3)
        scores, row = scores[finite], row[finite]
    edges = _edges(scores, bins)
    ceilings, exact = _edge_bounds(edges, scores.dtype)
    index = _approximate_bins(scores, edges, ceilings)
    # The arithmetic may miss by one next to an edge: the edges themselves decide (as in numpy's histogram). The
    # last bin also holds its right edge: an infinite ceiling above it keeps a score there.
    index -= scores < ceilings[index]
    index += scores >= np.append(ceilings[1:-1], np.inf).astype(ceilings.dtype)[index]
    row *= bins
    row += index
    per_bin = np.bincount(row, minlength=3 * bins).reshape(3, bins)
    if totals is None:
        totals = per_bin.sum(axis=1)
    # A score on an edge is on its own bin's left edge, or on the last edge (the top of the last bin): few.
    on_left = np.flatnonzero(scores == ceilings[index])
    on_left = on_left[exact[index[on_left]]]
    on_last = np.flatnonzero(scores == ceilings[-1]) if exact[-1] else on_left[:0]
    on_left = np.setdiff1d(on_left, on_last, assume_unique=True)
    per_edge = np.zeros((3, bins + 1), dtype=np.int64)
    np.add.at(per_edge, (row[on_left] // bins, index[on_left]), 1)
    np.add.at(per_edge, (row[on_last] // bins, bins), 1)
    return Binned(edges, per_bin, per_edge, totals)


def _approximate_bins(scores, edges, ceilings):
    """Each score's bin, right or one off next to an edge. Arithmetic where the scores' dtype holds the range and
    its scale, and a bin spans many of its steps at the scores' magnitude (so rounding moves a score by less than
    a bin); a binary search over the edges' bounds where it does not (ranges near the dtype's limits, among its
    subnormals, or narrower than a few of its steps)."""
    bins = len(edges) - 1
    info = np.finfo(scores.dtype)
    span = edges[-1] - edges[0]
    resolution = max(8 * info.eps * max(abs(edges[0]), abs(edges[-1])), info.tiny)
    if span < info.max and bins / span < info.max and span / bins >= resolution:
        scale = scores.dtype.type(bins / span)
        index = ((scores - scores.dtype.type(edges[0])) * scale).astype(np.intp)
        return np.clip(index, 0, bins - 1, out=index)
    return np.clip(np.searchsorted(ceilings, scores, side="right") - 1, 0, bins - 1)


def _edge_bounds(edges, dtype):
    """Per edge, the smallest value of `dtype` at or above it (`score < edge` iff `score < bound`, and
    `score >= edge` iff `score >= bound`, for scores of that dtype), and whether the edge is exactly that value
    (only then can a score equal it)."""
    if dtype != np.float32:
        return edges, np.ones(len(edges), dtype=bool)
    bounds = edges.astype(np.float32)
    below = bounds.astype(np.float64) < edges
    bounds[below] = np.nextafter(bounds[below], np.float32(np.inf))
    return bounds, bounds.astype(np.float64) == edges


def histogram_of(binned: Binned) -> dict:
    """The bin edges and the counts per bin split by ground truth (present / absent / unlabeled)."""
    return {"edges": binned.edges.tolist(),
            "counts": {name: binned.per_bin[k].tolist() for k, (name, _) in enumerate(GROUND_TRUTH_ROWS)}}


def histogram(scores, ground_truth, bins):
    """Equal-width bins over the finite scores' range, counted by ground truth."""
    return histogram_of(bin_scores(scores, ground_truth, bins))


def _ratios(numerator, denominator):
    return [float(n / d) if d else None for n, d in zip(numerator, np.broadcast_to(denominator, numerator.shape),
                                                        strict=True)]


def _side_sweep(counts, side_row, population, side_total, operator):
    """The figures of one side's rule at every edge, from its vote counts by ground truth row (3, edges)."""
    votes, labeled, correct = counts.sum(axis=0), counts[0] + counts[1], counts[side_row]
    return {"operator": operator, "votes": votes.tolist(), "labeled": labeled.tolist(), "correct": correct.tolist(),
            "precision": _ratios(correct, labeled), "recall": _ratios(correct, side_total),
            "coverage": _ratios(votes, population)}


def threshold_sweep(binned: Binned, invert=False) -> dict:
    """For every edge e, what each side's rule would do with e as its threshold: PRESENT for score >= e and
    ABSENT for score <= e (swapped when inverted), as votes_from_scores decides and vote_quality counts.

    Per side: `votes` (samples it would vote on), `labeled` (those with ground truth), `correct` (those whose
    ground truth is the side), `precision` = correct / labeled, `recall` = correct / samples whose ground truth is
    the side, `coverage` = votes / population; a ratio over zero is None. From cumulative counts over the bins,
    so a client moves thresholds along the edges without asking again."""
    per_bin, per_edge = binned.per_bin, binned.per_edge
    # score >= edges[j]: bins j.. (all of them below the last edge, whose count is the scores on it)
    at_or_above = np.concatenate([np.cumsum(per_bin[:, ::-1], axis=1)[:, ::-1], per_edge[:, -1:]], axis=1)
    # score < edges[j]: bins ..j-1, and every finite score but those on the last edge for j = bins
    below = np.concatenate([np.zeros((3, 1), dtype=per_bin.dtype), np.cumsum(per_bin, axis=1)], axis=1)
    below[:, -1] -= per_edge[:, -1]
    counts = {">=": at_or_above, "<=": below + per_edge}
    operators = {"present": "<=" if invert else ">=", "absent": ">=" if invert else "<="}
    population = int(binned.totals.sum())
    return {name: _side_sweep(counts[operators[name]], row, population, int(binned.totals[row]), operators[name])
            for row, (name, _) in enumerate(GROUND_TRUTH_ROWS[:2])}


def _best_cut(scores, positive, ascending, descending):
    """For the rule "score >= t" (descending) or "score <= t", precision and recall at every cut t. `ascending`:
    the order that sorts `scores` (reversed for descending: cuts fall only between distinct values, so how ties
    are ordered does not matter)."""
    order = ascending[::-1] if descending else ascending
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


def _side_cuts(scores, ground_truth, ascending, side, descending):
    """(thresholds, precision, recall, F1) of every cut of one side's rule; None without a labeled sample of it."""
    positive = ground_truth == side
    if not positive.any():
        return None
    thresholds, precision, recall = _best_cut(scores, positive, ascending, descending)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return thresholds, precision, recall, f1


def _best_of(cuts, kind, min_precision, above=None, below=None):
    """The best cut of `kind` with a threshold strictly between `above` and `below` (first on ties: the fewest
    votes), short of voting on every labeled sample, or None."""
    if cuts is None:
        return None
    thresholds, precision, recall, f1 = cuts
    candidates = np.ones(len(thresholds), dtype=bool)
    candidates[-1] = False  # the last cut votes on every labeled sample: a rule that tells nothing apart
    if above is not None:
        candidates &= thresholds > above
    if below is not None:
        candidates &= thresholds < below
    if kind == "best_recall_at_precision":
        candidates &= precision >= min_precision
    index = np.flatnonzero(candidates)
    if not len(index):
        return None
    goal = f1 if kind == "best_f1" else recall
    return _pick(thresholds, precision, recall, int(index[np.argmax(goal[index])]))


def suggest_thresholds(scores, ground_truth, invert=False, min_precision=0.9):
    """Suggested `high` and `low`: the best F1 cut, and the best-recall cut with precision >= min_precision.

    Computed on the labeled samples; None where the class has no labeled example of that side. The side that
    votes PRESENT (high, or low when inverted) gets its best cut over all cuts; the other side its best among the
    cuts beyond it, so for each kind a suggested low is always below the suggested high (None when no cut is left).
    """
    scores, ground_truth = np.asarray(scores), np.asarray(ground_truth)
    if scores.dtype != np.float32:  # the scan's float32 scores sort faster as they are (same order, same values)
        scores = scores.astype(np.float64)
    keep = (ground_truth != ABSTAIN) & np.isfinite(scores)
    scores, ground_truth = scores[keep], ground_truth[keep]
    # high: score >= t votes PRESENT (ABSENT inverted); low: score <= t votes ABSENT (PRESENT inverted)
    ascending = np.argsort(scores)  # one sort of the labeled samples serves both sides
    cuts = {"high": _side_cuts(scores, ground_truth, ascending, ABSENT if invert else PRESENT, descending=True),
            "low": _side_cuts(scores, ground_truth, ascending, PRESENT if invert else ABSENT, descending=False)}
    first, second = ("low", "high") if invert else ("high", "low")
    suggestions = {"high": {}, "low": {}}
    for kind in ("best_f1", "best_recall_at_precision"):
        chosen = suggestions[first][kind] = _best_of(cuts[first], kind, min_precision)
        bound = {} if chosen is None else {"above" if second == "high" else "below": chosen["threshold"]}
        suggestions[second][kind] = _best_of(cuts[second], kind, min_precision, **bound)
    suggestions["min_precision"] = min_precision
    return suggestions
