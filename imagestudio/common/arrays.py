"""Aligning arrays keyed by ascending sample ids, and picking from them. Pure numpy."""

import numpy as np


def locate(sorted_ids, ids):
    """For each of `ids`, its position in `sorted_ids` (ascending) and whether it is there: (where, found)."""
    sorted_ids, ids = np.asarray(sorted_ids), np.asarray(ids)
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    where = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return where, sorted_ids[where] == ids


def aligned(ids, keys, values, fill=0):
    """`values` (aligned with ascending `keys`) read at each of the ascending `ids`, `fill` where an id is not a
    key. O(n) through a dense table over the ids' span when the span is small enough, else binary search."""
    ids, keys = np.asarray(ids), np.asarray(keys)
    out = np.full(len(ids), fill, dtype=np.asarray(values).dtype)
    if not len(ids) or not len(keys):
        return out
    low, high = int(min(ids[0], keys[0])), int(max(ids[-1], keys[-1]))
    if high - low < 4 * (len(ids) + len(keys)):
        table = np.full(high - low + 1, fill, dtype=out.dtype)
        table[keys - low] = values
        return table[ids - low]
    where, found = locate(keys, ids)
    out[found] = np.asarray(values)[where[found]]
    return out


def consecutive_runs(sorted_ids, subset):
    """The runs of `subset` (ascending, a subset of `sorted_ids`) that are consecutive in `sorted_ids`, as
    (first ids, last ids): [1, 2, 4] of [1, 2, 3, 4, 5] gives ([1, 4], [2, 4])."""
    subset = np.asarray(subset)
    if len(subset) == 0:
        return subset[:0], subset[:0]
    positions = np.searchsorted(np.asarray(sorted_ids), subset)
    breaks = np.flatnonzero(np.diff(positions) != 1)
    return subset[np.r_[0, breaks + 1]], subset[np.r_[breaks, len(subset) - 1]]


def top_k(scores, k, descending=True):
    """Indices of the k highest (or lowest) finite scores, best first."""
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    finite = np.isfinite(scores)
    # float32 scores keep their dtype: widening them is exact, so their order is the same
    candidates = np.arange(len(scores)) if finite.all() else np.flatnonzero(finite)
    if len(candidates) == 0:
        return candidates
    keyed = (-scores if descending else scores) if len(candidates) == len(scores) else \
        (-scores[candidates] if descending else scores[candidates])
    k = min(k, len(candidates))
    part = np.argpartition(keyed, k - 1)[:k]
    return candidates[part[np.argsort(keyed[part], kind="stable")]]
