#!/usr/bin/env python
"""What the fast model's C grid costs: `fitting.select_c` along the old grid (0.1, 1, 10) as the baseline and
along `fitting.C_GRID`; and the fit without dev labels, `fitting.fit_logistic` at the old default C = 1 and at
`fitting.DEFAULT_C`. The same synthetic rows for all (--rows x 512 unit vectors, 20 % PRESENT along one
direction, 10 % of the training labels flipped; 2,000 dev rows), each case timed alone in a process of its own,
one after the other, with the load average. The rows are built before the timer in every case.

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
    return features, positive ^ (rng.random(n) < 0.1), dev_features, dev_positive


def child(n, grid):
    """One grid: select_c along it; one C alone: a single fit at it (the job without dev labels)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from imagestudio.training import fitting

    features, positive, dev_features, dev_positive = rows(n)
    started = time.perf_counter()
    if len(grid) == 1:
        fitting.fit_logistic(features, positive, grid[0], seed=0)
        chosen = grid[0]
    else:
        chosen = fitting.select_c(features, positive, dev_features, dev_positive, seed=0, c_grid=grid).c_value
    print(f"{time.perf_counter() - started:.3f} {chosen} {os.getloadavg()[0]:.2f}")


def compare(n, cases):
    """Each (label, grid) in its own process, in order; prints them and their ratio (second / first)."""
    seconds = []
    for label, grid in cases:
        out = subprocess.run([sys.executable, "-W", "ignore", __file__, "--rows", str(n), "--child",
                              ",".join(map(str, grid))], capture_output=True, text=True, check=True).stdout.split()
        seconds.append(float(out[0]))
        print(f"  {label:<40} {seconds[-1]:7.3f} s  C {out[1]}  load {out[2]}")
    print(f"  ratio: {seconds[1] / seconds[0]:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rows, tuple(float(c) for c in args.child.split(",")))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from imagestudio.training.fitting import C_GRID, DEFAULT_C

    print(f"select_c on {args.rows:,} x 512 rows (with dev labels), each grid in its own process")
    compare(args.rows, [("baseline grid (0.1, 1, 10)", BASELINE_GRID), (f"C_GRID {C_GRID}", C_GRID)])
    print("one fit (without dev labels), each C in its own process")
    compare(args.rows, [("baseline C = 1", (1.0,)), (f"DEFAULT_C = {DEFAULT_C:g}", (DEFAULT_C,))])

if __name__ == "__main__":
    main()
