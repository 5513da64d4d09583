#!/usr/bin/env python
"""The label model's choice with a handful of dev labels: `label_class_votes` against majority vote on valid.

Votes: the seven synthetic scenarios of label_quality.py (their class-conditional, one-sided, correlated and
inverted LFs) and a rare class (2 %: 3 keyword-like PRESENT-only LFs, 2 ABSENT-only LFs, 2 two-sided ones),
each seeded with --seeds seeds, --dev labeled dev rows of each size in --dev-sizes (default 20, 50, 100), 2,000
unlabeled rows and 3,000 valid rows whose truth no method sees. Per scenario and dev size: the mean and the worst
valid F1 of ours minus majority vote's (the baseline, on the same votes in the same run; ties to the dev
majority class), the runs that fell more than 0.1 below it, and which candidates were chosen. No timing.

    .venv/bin/python bench/label_small_dev.py                    # 8 scenarios x 3 dev sizes x 10 seeds
    .venv/bin/python bench/label_small_dev.py --seeds 20 --dev-sizes 20,50
"""

import argparse
import collections
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import numpy as np  # noqa: E402
from label_quality import generate, scenarios, symmetric  # noqa: E402

from imagestudio.labeling.label_choice import label_class_votes  # noqa: E402

UNLABELED, VALID, DROP = 2000, 3000, 0.1


def rare(n, seed):
    keyword = [[0, 0.004, 0.996], [0, 0.35, 0.65]]
    loose_absent = [[0.6, 0, 0.4], [0.1, 0, 0.9]]
    return generate([keyword] * 3 + [loose_absent] * 2 + [symmetric(0.8, 0.4)] * 2, 0.02, n, seed + 7)


def all_scenarios(n, seed):
    return {**scenarios(n, seed), "rare 2%": rare(n, seed)}


def f1(labels, truth):
    return 2 * ((labels == 1) & (truth == 1)).sum() / max((labels == 1).sum() + (truth == 1).sum(), 1)


def one_run(votes, truth, dev_size):
    """(ours - majority vote valid F1, chosen): the first dev_size rows are dev, the last VALID rows valid."""
    dev = np.zeros(len(truth), dtype=bool)
    dev[:dev_size] = True
    valid = np.zeros(len(truth), dtype=bool)
    valid[-VALID:] = True
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev)
    present, absent = (votes == 1).sum(axis=1), (votes == -1).sum(axis=1)
    dev_majority = 1 if (truth[dev] == 1).mean() > 0.5 else -1
    majority = np.where(present > absent, 1, np.where(absent > present, -1, dev_majority))
    ours = np.where(result.labels.label == 0, dev_majority, result.labels.label)
    return f1(ours[valid], truth[valid]) - f1(majority[valid], truth[valid]), result.chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--dev-sizes", default="20,50,100")
    args = parser.parse_args()
    dev_sizes = [int(size) for size in args.dev_sizes.split(",")]
    print(f"== label choice with few dev labels: {args.seeds} seeds, dev sizes {dev_sizes}, load {os.getloadavg()[0]:.2f}")
    print(f"{'scenario':16s} {'dev':>4s} {'F1 - MV mean':>12s} {'worst':>7s} {'drops':>5s}  chosen")
    totals = collections.Counter()
    rows = {}  # (scenario, dev size) -> [(gain, chosen)]
    for seed in range(args.seeds):
        for dev_size in dev_sizes:
            for name, (votes, truth, _) in all_scenarios(dev_size + UNLABELED + VALID, seed).items():
                rows.setdefault((name, dev_size), []).append(one_run(votes, truth, dev_size))
    for (name, dev_size), runs in rows.items():
        gains = np.array([gain for gain, _ in runs])
        drops = int((gains < -DROP).sum())
        chosen = dict(collections.Counter(chosen for _, chosen in runs))
        totals.update(runs=len(runs), drops=drops)
        totals["gain"] += float(gains.sum())
        print(f"{name:16s} {dev_size:4d} {gains.mean():+12.4f} {gains.min():+7.3f} {drops:5d}  {chosen}")
    print(f"all: {totals['runs']} runs, mean F1 - MV {totals['gain'] / totals['runs']:+.4f}, "
          f"runs more than {DROP} below MV: {totals['drops']}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
