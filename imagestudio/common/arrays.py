"""Aligning arrays keyed by ascending sample ids. Pure numpy."""

import numpy as np


def locate(sorted_ids, ids):
    """For each of `ids`, its position in `sorted_ids` (ascending) and whether it is there: (where, found)."""
    sorted_ids, ids = np.asarray(sorted_ids), np.asarray(ids)
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    where = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return where, sorted_ids[where] == ids
