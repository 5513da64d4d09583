"""Deterministic resampling of one split. Pure numpy, no Django.

Given the split's sample ids, which samples carry any ground truth, and which are PRESENT per class,
choose `sample_size` ids such that:
  1. each class gets up to `min_per_class` samples labeled PRESENT for it (as far as they exist),
  2. at most `max_labeled` labeled samples are taken in all (the class minimums count toward it),
  3. the rest is filled at random, labeled samples only while the cap allows.
The same inputs and seed always give the same ids.
"""

from dataclasses import dataclass

import numpy as np


class ResampleError(ValueError):
    pass


@dataclass(frozen=True)
class ResampleRequest:
    sample_size: int
    max_labeled: int | None
    min_per_class: int
    seed: int


def choose_sample(ids, labeled, present, request):
    """Return the chosen ids (sorted).

    ids: int64 array (n,); labeled: bool array (n,); present: bool array (n, classes).
    """
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids, labeled, present = ids[order], np.asarray(labeled, bool)[order], np.asarray(present, bool)[order]
    n_classes = present.shape[1] if present.ndim == 2 else 0
    size = min(request.sample_size, len(ids))
    cap = len(ids) if request.max_labeled is None else request.max_labeled
    rng = np.random.default_rng(request.seed)
    chosen = np.zeros(len(ids), dtype=bool)
    for k in range(n_classes):
        have = int((chosen & present[:, k]).sum())
        need = request.min_per_class - have
        if need <= 0:
            continue
        candidates = np.flatnonzero(present[:, k] & ~chosen)
        take = rng.permutation(candidates)[:need]
        chosen[take] = True
    picked = int(chosen.sum())
    if picked > min(cap, size):
        raise ResampleError(
            f"min_per_class={request.min_per_class} for {n_classes} classes takes {picked} labeled samples, "
            f"more than max_labeled ({request.max_labeled}) or sample_size ({request.sample_size}) allow"
        )
    labeled_budget = cap - int((chosen & labeled).sum())
    remaining = size - int(chosen.sum())
    if remaining > 0:
        pool = rng.permutation(np.flatnonzero(~chosen))
        pool_labeled = labeled[pool]
        # Walk the shuffled pool, taking labeled samples only while the cap allows.
        labeled_rank = np.cumsum(pool_labeled)
        allowed = ~pool_labeled | (labeled_rank <= labeled_budget)
        take = pool[allowed][:remaining]
        chosen[take] = True
    return ids[chosen]


def realized_counts(chosen, labeled, present, absent, class_names):
    """What a chosen sample holds: total, labeled / unlabeled, PRESENT / ABSENT per class (chosen: bool mask)."""
    return {
        "total": int(chosen.sum()),
        "labeled": int((chosen & labeled).sum()),
        "unlabeled": int((chosen & ~labeled).sum()),
        "per_class": {
            name: {"present": int((chosen & present[:, k]).sum()), "absent": int((chosen & absent[:, k]).sum())}
            for k, name in enumerate(class_names)
        },
    }
