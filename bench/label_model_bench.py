#!/usr/bin/env python
"""Label model fit time and accuracy against snorkel's LabelModel, on the same synthetic votes, same run.

Synthetic votes for one class with known parameters: --samples samples (default 500,000), --lfs LFs
(default 20), class balance --balance (0.2), each LF with an accuracy drawn uniformly in 0.55-0.95 (the
same for both classes) and a coverage drawn uniformly in 0.3-0.8, independent given the class: exactly
the model both label models assume. Seeded (--seed), so every run sees the same votes.

Ours: imagestudio.labeling.label_model.DawidSkene().fit(votes) then predict (learned class prior), the same
with class_balance=0.2 given, and MajorityVote. Snorkel: LabelModel(cardinality=2).fit(L_train=L,
n_epochs=500, seed=0, log_freq=100) in a subprocess of a separate virtualenv (--snorkel-python), on the same votes
saved to an .npy and mapped to snorkel's convention (-1 abstain, 0 negative, 1 positive).

The compared baseline is snorkel given the class balance (class_balance=[0.8, 0.2]): without it snorkel assumes a
uniform prior and loses ~0.28 of accuracy here, so only the call given the balance does the work ours does (reach
the same accuracy). Snorkel's default call (no class_balance) is printed for information. Each side is timed alone,
in phases that never overlap: first every round of ours (in this process, after a warm-up fit), then one snorkel
process per round given the class balance, then one per round of the default call; each snorkel process warms torch
up before its one timed fit. Times are medians of --rounds; the load average at the end of every fit is printed
beside it.

Accuracy is on covered samples (at least one vote), a covered sample a model abstains on counting as
wrong. The Bayes-optimal accuracy from the true parameters is printed for reference.
Target: accuracy >= snorkel's given the class balance, fit time <= 0.5 x its fit time.

    python3 -m venv /tmp/snorkel-venv && /tmp/snorkel-venv/bin/pip install snorkel==0.10.0   # once
    .venv/bin/python bench/label_model_bench.py                  # 500,000 x 20, 3 rounds
    .venv/bin/python bench/label_model_bench.py --rounds 5 --profile
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_TIME_RATIO = 0.5
DEFAULT_SNORKEL_PYTHON = "/tmp/snorkel-venv/bin/python"
OURS = "ours DawidSkene (learned prior)"
SNORKEL_BALANCE = "snorkel LabelModel class_balance=[1-b, b]"
SNORKEL_DEFAULT = "snorkel LabelModel (default call, info)"
SNORKEL_CALLS = {"balance": SNORKEL_BALANCE, "default": SNORKEL_DEFAULT}


def load_average():
    return os.getloadavg()[0]


# ---------------------------------------------------------------- votes (numpy only: the snorkel child uses it too)


def make_votes(n, m, balance, seed):
    """(votes int8 n x m in the service's convention 1 / -1 / 0, truth int8 1 / -1, accuracies, coverages)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    accuracies = rng.uniform(0.55, 0.95, m)
    coverages = rng.uniform(0.3, 0.8, m)
    truth = np.where(rng.random(n) < balance, 1, -1).astype(np.int8)
    votes = np.empty((n, m), dtype=np.int8)
    for j in range(m):  # column by column: no n x m float temporaries
        voted = rng.random(n) < coverages[j]
        correct = rng.random(n) < accuracies[j]
        votes[:, j] = np.where(voted, np.where(correct, truth, -truth), 0)
    return votes, truth, accuracies, coverages


def covered_accuracy(predicted, truth, covered):
    """Accuracy on covered samples, abstains (0) counting as wrong; and how many covered samples abstained."""
    import numpy as np

    predicted, truth = np.asarray(predicted)[covered], np.asarray(truth)[covered]
    return float((predicted == truth).mean()), int((predicted == 0).sum())


def bayes_optimal(votes, truth, accuracies, balance):
    """Accuracy on covered samples of the posterior from the true parameters (class-independent accuracies,
    class-independent coverage: the coverage terms cancel)."""
    import numpy as np

    weights = np.log(accuracies / (1 - accuracies))
    llr = np.log(balance / (1 - balance)) + votes.astype(np.float64) @ weights
    predicted = np.where(llr >= 0, 1, -1)
    covered = (votes != 0).any(axis=1)
    return covered_accuracy(predicted, truth, covered)[0]


# ---------------------------------------------------------------- snorkel (runs in the snorkel virtualenv)


def snorkel_child(votes_path, truth_path, epochs, balance, call, out_path):
    """One timed fit of snorkel's LabelModel (`call`: "balance" given the class balance, or "default"), after a
    warm-up fit; writes JSON to out_path."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import numpy as np
    import snorkel
    import torch
    from snorkel.labeling.model import LabelModel

    votes = np.load(votes_path)
    truth = np.load(truth_path)
    covered = (votes != 0).any(axis=1)
    # snorkel: -1 abstain, 0 negative, 1 positive
    L = np.where(votes == 0, -1, np.where(votes == 1, 1, 0)).astype(np.int64)
    class_balance = [1 - balance, balance] if call == "balance" else None
    # Warm-up (torch's first-call costs), so the timed fit is not charged for them.
    LabelModel(cardinality=2, verbose=False).fit(L_train=L[:2000], n_epochs=20, seed=0, class_balance=class_balance,
                                                 progress_bar=False)
    model = LabelModel(cardinality=2, verbose=False)
    started = time.perf_counter()
    model.fit(L_train=L, n_epochs=epochs, seed=0, log_freq=100, class_balance=class_balance, progress_bar=False)
    fit_s = time.perf_counter() - started
    load = load_average()
    started = time.perf_counter()
    predicted = model.predict(L, tie_break_policy="abstain")  # -1 where the probabilities tie
    predict_s = time.perf_counter() - started
    mapped = np.where(predicted == -1, 0, np.where(predicted == 1, 1, -1))
    accuracy, abstained = covered_accuracy(mapped, truth, covered)
    Path(out_path).write_text(json.dumps({
        "version": snorkel.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "fit_s": fit_s, "load": load, "predict_s": predict_s, "accuracy": accuracy, "abstained": abstained,
        "prior": None if class_balance is None else balance,
        "lf_accuracies": [float(a) for a in model.get_weights()],  # per-LF accuracies as snorkel estimates them
    }))


def run_snorkel(python, votes_path, truth_path, epochs, balance, call):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out_path = handle.name
    try:
        command = [python, __file__, "--snorkel-child", votes_path, truth_path, out_path, "--epochs", str(epochs),
                   "--balance", str(balance), "--snorkel-call", call]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                   env={**os.environ, "TQDM_DISABLE": "1"})
        if completed.returncode != 0:
            raise SystemExit(f"the snorkel subprocess failed ({' '.join(command)}):\n{completed.stderr[-3000:]}")
        return json.loads(Path(out_path).read_text())
    finally:
        Path(out_path).unlink(missing_ok=True)


def snorkel_available(python):
    if not Path(python).exists():
        return (f"{python} does not exist (python3 -m venv /tmp/snorkel-venv && "
                f"/tmp/snorkel-venv/bin/pip install snorkel==0.10.0)")
    completed = subprocess.run([python, "-c", "import snorkel.labeling.model, snorkel; print(snorkel.__version__)"],
                               capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        return completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "import failed"
    return None


# ---------------------------------------------------------------- ours


def fit_ours(model_factory, votes):
    started = time.perf_counter()
    model = model_factory().fit(votes)
    fit_s = time.perf_counter() - started
    load = load_average()
    started = time.perf_counter()
    labels = model.predict(votes)
    predict_s = time.perf_counter() - started
    return model, labels, fit_s, load, predict_s


def profile_fit(votes):
    import cProfile
    import pstats

    from imagestudio.labeling.label_model import DawidSkene

    profiler = cProfile.Profile()
    profiler.enable()
    DawidSkene().fit(votes)
    profiler.disable()
    print("\n== cProfile of one DawidSkene().fit (internal time)")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--lfs", type=int, default=20)
    parser.add_argument("--balance", type=float, default=0.2, help="P(PRESENT) of the synthetic truth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=500, help="snorkel's n_epochs")
    parser.add_argument("--rounds", type=int, default=3, help="timed fits of each method (one snorkel process each)")
    parser.add_argument("--snorkel-python", default=DEFAULT_SNORKEL_PYTHON)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one DawidSkene fit")
    parser.add_argument("--snorkel-child", nargs=3, metavar=("VOTES", "TRUTH", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--snorkel-call", choices=sorted(SNORKEL_CALLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.snorkel_child:
        snorkel_child(*args.snorkel_child[:2], args.epochs, args.balance, args.snorkel_call, args.snorkel_child[2])
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common  # noqa: E402

    _common.configure_environment()
    import django

    django.setup()  # settings only (print_environment); the label model itself needs no database
    import numpy as np
    import threadpoolctl

    from imagestudio.labeling.label_model import DawidSkene, MajorityVote

    missing = snorkel_available(args.snorkel_python)
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpoolctl.threadpool_info())
    _common.print_environment("label model vs snorkel LabelModel", {
        "numpy": f"{np.__version__} ({blas})",
        "snorkel": f"{args.snorkel_python}" + (f" UNAVAILABLE: {missing}" if missing else ""),
    })
    if missing:
        raise SystemExit(f"snorkel is not usable: {missing}")

    started = time.perf_counter()
    votes, truth, accuracies, coverages = make_votes(args.samples, args.lfs, args.balance, args.seed)
    covered = (votes != 0).any(axis=1)
    print(f"votes       {args.samples:,} x {args.lfs} (seed {args.seed}) in {time.perf_counter() - started:.1f} s: "
          f"{covered.mean():.4%} covered, {(votes != 0).sum(axis=1).mean():.2f} votes a sample, "
          f"true balance {float((truth == 1).mean()):.4f}")
    print(f"LF accuracy {', '.join(f'{a:.2f}' for a in accuracies)}")
    print(f"LF coverage {', '.join(f'{c:.2f}' for c in coverages)}")
    optimum = bayes_optimal(votes, truth, accuracies, args.balance)

    workdir = Path(tempfile.mkdtemp(prefix="label-model-bench-"))
    votes_path, truth_path = str(workdir / "votes.npy"), str(workdir / "truth.npy")
    np.save(votes_path, votes)
    np.save(truth_path, truth)

    ours = {
        OURS: lambda: DawidSkene(),
        f"ours DawidSkene(class_balance={args.balance})": lambda: DawidSkene(class_balance=args.balance),
        "ours MajorityVote": lambda: MajorityVote(),
    }
    runs = {}  # name -> list of dicts

    def report(name, entry, lf_accuracies=None):
        if lf_accuracies is not None:
            entry["lf_error"] = float(np.abs(np.asarray(lf_accuracies) - accuracies).max())
        runs.setdefault(name, []).append(entry)
        print(f"  {name:<46} fit {entry['fit_s']:6.2f} s  (load {entry['load']:.2f})")

    snorkel_info = None
    try:
        print(f"\nphase 1: ours, {args.rounds} rounds (load {load_average():.2f} before)")
        fit_ours(ours[OURS], votes[:20_000])  # warm-up (allocator, BLAS)
        for _ in range(args.rounds):
            for name, factory in ours.items():
                model, labels, fit_s, load, predict_s = fit_ours(factory, votes)
                accuracy, abstained = covered_accuracy(labels.label, truth, covered)
                report(name, {"fit_s": fit_s, "load": load, "predict_s": predict_s, "accuracy": accuracy,
                              "abstained": abstained, "prior": getattr(model, "prior", None),
                              "iterations": getattr(model, "iterations", None)},
                       model.lf_accuracies() if isinstance(model, DawidSkene) else None)
        for phase, (call, name) in enumerate(SNORKEL_CALLS.items(), 2):
            print(f"phase {phase}: {name}, {args.rounds} processes (load {load_average():.2f} before)")
            for _ in range(args.rounds):
                snorkel_info = run_snorkel(args.snorkel_python, votes_path, truth_path, args.epochs, args.balance,
                                           call)
                report(name, {key: snorkel_info[key] for key in ("fit_s", "load", "predict_s", "accuracy",
                                                                 "abstained", "prior")},
                       snorkel_info["lf_accuracies"])
    finally:
        for path in (votes_path, truth_path):
            Path(path).unlink(missing_ok=True)
        workdir.rmdir()

    print(f"\nsnorkel {snorkel_info['version']} (torch {snorkel_info['torch']}, {snorkel_info['threads']} threads), "
          f"n_epochs={args.epochs}, {args.rounds} rounds")
    snorkel_base = statistics.median(v["fit_s"] for v in runs[SNORKEL_BALANCE])
    snorkel_acc = runs[SNORKEL_BALANCE][0]["accuracy"]
    n_covered = int(covered.sum())
    print(f"\n== label model on {args.samples:,} samples x {args.lfs} LFs, one class "
          f"(medians of {args.rounds}; accuracy on the {n_covered:,} covered samples)")
    header = (f"{'method':<46} {'fit s':>7} {'min s':>7} {'load':>11} {'predict s':>9} {'x base':>7} {'accuracy':>9} "
              f"{'correct':>8} {'abstain':>7} {'prior':>7} {'iters':>5} {'max |LF acc err|':>16}")
    print(header + "\n" + "-" * len(header))
    for name, values in runs.items():
        fit = statistics.median(v["fit_s"] for v in values)
        loads = [v["load"] for v in values]
        first = values[0]
        prior = "" if first.get("prior") is None else f"{first['prior']:.4f}"
        iterations = "" if first.get("iterations") is None else str(first["iterations"])
        error = "" if first.get("lf_error") is None else f"{first['lf_error']:.4f}"
        print(f"{name:<46} {fit:7.2f} {min(v['fit_s'] for v in values):7.2f} "
              f"{f'{min(loads):.1f}-{max(loads):.1f}':>11} {statistics.median(v['predict_s'] for v in values):9.3f} "
              f"{fit / snorkel_base:7.2f} {first['accuracy']:9.5f} {round(first['accuracy'] * n_covered):8d} "
              f"{first['abstained']:7d} {prior:>7} {iterations:>5} {error:>16}")
    print(f"{'Bayes-optimal (true parameters)':<46} {'':>7} {'':>7} {'':>11} {'':>9} {'':>7} {optimum:9.5f} "
          f"{round(optimum * n_covered):8d}")
    print("(x base: median fit time / the median fit time of snorkel given the class balance, the compared baseline;\n"
          " load: the range of the 1-minute load average at the end of each timed fit; prior: the class prior used\n"
          " (learned by ours, given to snorkel); abstain: covered samples left without a label, counted as wrong;\n"
          " max |LF acc err|: the worst learned LF accuracy against the true one)")

    ds = runs[OURS]
    ds_fit = statistics.median(v["fit_s"] for v in ds)
    time_ratio = ds_fit / snorkel_base
    accuracy_ok = ds[0]["accuracy"] >= snorkel_acc
    time_ok = time_ratio <= TARGET_TIME_RATIO
    gap = round((ds[0]["accuracy"] - snorkel_acc) * n_covered)
    print(f"\ntarget accuracy >= snorkel's given the class balance ({snorkel_acc:.5f}): "
          f"{'met' if accuracy_ok else 'MISSED'} ({ds[0]['accuracy']:.5f}: {gap:+d} correct samples of {n_covered:,}; "
          f"Bayes-optimal {optimum:.5f}, {round((ds[0]['accuracy'] - optimum) * n_covered):+d} against it)")
    default_gap = round((ds[0]["accuracy"] - runs[SNORKEL_DEFAULT][0]["accuracy"]) * n_covered)
    default_ratio = ds_fit / statistics.median(v["fit_s"] for v in runs[SNORKEL_DEFAULT])
    print(f"  against snorkel's default call (info; no class_balance: a uniform prior): {default_gap:+d} correct "
          f"samples, fit time ratio {default_ratio:.2f}")
    print(f"target fit time <= {TARGET_TIME_RATIO} x snorkel's given the class balance: "
          f"{'met' if time_ok else 'MISSED'} ({time_ratio:.2f}: {ds_fit:.2f} s against {snorkel_base:.2f} s)")
    if args.profile:
        profile_fit(votes)
    _common.print_load()
    return 0 if accuracy_ok and time_ok else 1


if __name__ == "__main__":
    sys.exit(main())
