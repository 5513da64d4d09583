#!/usr/bin/env python
"""What the fast model's C grid costs: `fitting.select_c` along the old grid (0.1, 1, 10) as the baseline and
along `fitting.C_GRID`; and the fit without dev labels, `fitting.fit_logistic` at the old default C = 1 and at
`fitting.DEFAULT_C`; and a training-set model's fit, `fitting.select_targets_and_c` on a training set's
probabilities and labels against `select_c` on its labels alone (before the targets were chosen); and a model
trained on dev rows, `fitting.select_c_by_cv` over 3 folds (the old cross-fitting) against
`fitting.cross_fit_folds(--rows)` folds (10 up to CROSS_FIT_LARGE_ROWS rows). The same
synthetic rows for all (--rows x 512 unit vectors, 20 % PRESENT along one direction, 10 % of the training labels
flipped, a probability per training row around its label; 2,000 dev rows), each case timed alone in a process of
its own, one after the other, with the load average. The rows are built before the timer in every case.

    .venv/bin/python bench/c_grid_cost.py --rows 500000
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BASELINE_GRID = (0.1, 1.0, 10.0)


def rows(n, seed=0, dim=512):
    import numpy as np

    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim).astype(np.float32)
    direction /= np.linalg.norm(direction)

    def draw(count):
        positive = rng.random(count) < 0.2
        vectors = rng.standard_normal((count, dim)).astype(np.float32) / np.sqrt(dim)
        vectors += np.outer(positive, direction) * 0.15
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), positive

    features, positive = draw(n)
    dev_features, dev_positive = draw(2000)
    labels = positive ^ (rng.random(n) < 0.1)
    # a label model's P(PRESENT): on the side of its label, surer on some rows than on others
    probability = np.where(labels, 0.5 + rng.uniform(0.01, 0.5, n), 0.5 - rng.uniform(0.01, 0.5, n))
    return features, labels, probability, dev_features, dev_positive


def child(n, case):
    """One grid: select_c along it; one C alone: a single fit at it (the job without dev labels); "targets" /
    "labels": select_targets_and_c on the probabilities and labels / on the labels alone, along C_GRID."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from imagestudio.training import fitting

    features, positive, probability, dev_features, dev_positive = rows(n)
    targets = {"probabilities": probability, "labels": positive} if case == "targets" else {"labels": positive}
    grid = None if case in ("targets", "labels") or case.startswith("folds") else tuple(float(c) for c in case.split(","))
    started = time.perf_counter()
    if case.startswith("folds"):
        chosen = fitting.select_c_by_cv(features, positive, seed=0, folds=int(case[len("folds"):])).c_value
    elif grid is None:
        chosen = fitting.select_targets_and_c(features, targets, dev_features, dev_positive, seed=0).c_value
    elif len(grid) == 1:
        fitting.fit_logistic(features, positive, grid[0], seed=0)
        chosen = grid[0]
    else:
        chosen = fitting.select_c(features, positive, dev_features, dev_positive, seed=0, c_grid=grid).c_value
    print(f"{time.perf_counter() - started:.3f} {chosen} {os.getloadavg()[0]:.2f}")


def compare(n, cases):
    """Each (label, case) in its own process, in order; prints them and their ratio (second / first). A case is
    a grid or "targets" / "labels" (child)."""
    seconds = []
    for label, case in cases:
        case = case if isinstance(case, str) else ",".join(map(str, case))
        out = subprocess.run([sys.executable, "-W", "ignore", __file__, "--rows", str(n), "--child", case],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds.append(float(out[0]))
        print(f"  {label:<40} {seconds[-1]:7.3f} s  C {out[1]}  load {out[2]}")
    print(f"  ratio: {seconds[1] / seconds[0]:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rows, args.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from imagestudio.training.fitting import C_GRID, DEFAULT_C, cross_fit_folds

    print(f"select_c on {args.rows:,} x 512 rows (with dev labels), each grid in its own process")
    compare(args.rows, [("baseline grid (0.1, 1, 10)", BASELINE_GRID), (f"C_GRID {C_GRID}", C_GRID)])
    print("one fit (without dev labels), each C in its own process")
    compare(args.rows, [("baseline C = 1", (1.0,)), (f"DEFAULT_C = {DEFAULT_C:g}", (DEFAULT_C,))])
    print("a training-set model (with dev labels) along C_GRID, each in its own process")
    compare(args.rows, [("labels only (select_c)", "labels"), ("probabilities and labels", "targets")])
    folds = cross_fit_folds(args.rows)
    print("a model trained on dev rows (C by cross-validation, out-of-fold scores), each in its own process")
    compare(args.rows, [("3 folds", "folds3"), (f"cross_fit_folds = {folds}", f"folds{folds}")])

if __name__ == "__main__":
    main()
