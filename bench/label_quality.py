#!/usr/bin/env python
"""Label quality of `label_class_votes` against majority vote, snorkel's LabelModel and the Bayes-optimal rule.

Synthetic section: seven seeded scenarios, each --samples rows (default 50,000) of one class with votes drawn from
known class-conditional LF parameters, --dev labeled dev rows (300) the label models may use, and a held-out
"valid" part (--valid rows, 10,000) no model sees the truth of. Figures are on valid, every method scored
with the same rule (a row it leaves without a label counts as the dev majority class; a NaN probability as
the dev PRESENT share): accuracy, F1 (PRESENT positive), Brier score, expected calibration error.

- symmetric: 10 LFs, accuracy U(0.55, 0.95) for both classes, coverage U(0.3, 0.8), balance 0.2
- asymmetric: 10 LFs, accuracy and coverage drawn per class, balance 0.3
- one-sided: 5 keyword-like LFs (precise PRESENT, silent otherwise), 3 loose ABSENT-only LFs, balance 0.15
- correlated: a good LF, a family of 5 near-duplicates of one mediocre LF (each copy repeats the family's
  latent vote with probability 0.9, else abstains) and 4 independent LFs, balance 0.3; the Bayes-optimal
  rule models the family as the one source it is
- cluster family: 4 independent LFs (one always voting, 0.8 right) and 3 that follow a hidden cluster only
  weakly tied to the class (P 0.6 if present, 0.4 if absent; each votes it 90 % of the time, else the other
  way), balance 0.4: the members' votes correlate at about 0.64, under the near-duplicate rule, and an unlabeled
  fit can take the cluster for the class (two image exemplars of one visual cluster do this on the digits); the
  Bayes-optimal rule sums over the cluster
- few LFs: 3 LFs (accuracy 0.8 / 0.7 / 0.65), balance 0.3
- few inverted: 4 LFs written the wrong way round (accuracy 0.25-0.35): only dev labels can orient them

Methods: Bayes-optimal (the posterior under the true parameters), majority vote, ours (the chosen candidate
and every candidate, refit on all dev labels), snorkel 0.10 LabelModel(cardinality=2).fit(n_epochs=500,
seed=0) by default and with class_balance = the dev PRESENT share, run in a separate venv (--snorkel-python).
Fit time: DawidSkene().fit and the whole label_class_votes at --fit-samples x 20 LFs (default 500,000) in
this process, snorkel's fit of the same votes alone in its own process afterwards (never interleaved).

Targets (printed with the figures): every scenario's F1 >= max(majority vote, snorkel default, snorkel
balanced) - 0.005; mean F1 >= majority vote + 0.03 over scenarios whose LF qualities differ (all of these);
accuracy within 0.5 points of Bayes-optimal; ECE <= 0.05 on valid; fit <= 0.5 s per class. Where the F1 target
is missed, the best F1 of any labeling within 0.5 points of the Bayes-optimal accuracy is printed (a cut of
the valid rows sorted by their true posterior): below the target, the two targets cannot both be met.
Beside each F1 target: the paired bootstrap 5-95% interval of F1(ours) - F1(that baseline) over the valid rows
(the noise of the comparison) and the best valid F1 of any of our candidates (the most any rule choosing among
them on dev could reach: below the target, the miss is the candidates', not the choice's).

Digits section (real images through the service; data, LFs and thresholds in bench/_digits.py): the 1,797
images of scikit-learn's load_digits as 64x64 PNGs with classes even / gt4 / loop (0, 6, 8, 9) / prime,
train 1,000 (no ground truth) / dev 200 / valid 597, a noisy `caption` and an `ink` count as metadata. A user
and a dataset through dataset_create, the zip and a JSONL manifest through import_start, vectors through
embeddings_start with conse-offline (joint 384-d and visual 1,280-d; about 90 s the first time, then the
bench database's dataset is reused and the output says so), 6 LFs per class through lf_create (caption
keywords, an ink comparison, two image and one patch exemplar from train, a model LF over a fast model trained
on dev ground truth, which scores the dev rows out-of-fold), thresholds from dev.
Per class on valid, from vote_matrix and ground_truth_for: majority
vote, snorkel default and balanced, ours (evaluate_label_models), and the vote patterns on which ours and the
best baseline label the most valid rows differently, with their PRESENT shares on dev and valid. Then a training set through
training_set_start (its labels must equal label_class_votes'), fast models on it through model_start in the
visual and the joint space (each keeping the targets dev prefers, the set's probabilities or its labels: the
`fitted` column) beside the service's ground-truth ceiling and a logistic regression on the ground truth of train
(C on dev, the fast model's own select_c).

Digits targets: label F1 per class >= max(MV, snorkel default, snorkel balanced) - 0.005; mean label F1 >=
MV + 0.03; fast models visual > joint (mean valid F1); fast model (visual) on training-set labels >= 0.90 x
the same features on train ground truth (mean F1); ECE of the training set's probabilities on valid <= 0.05
per class (its report's calibration.valid.ece), printed beside the median and 90th percentile of the ECE a perfectly
calibrated predictor with the same probabilities scores on the same rows (its noise); the label F1 targets with
the same interval and best candidate as the synthetic ones.

    python3 -m venv /tmp/snorkel-venv && /tmp/snorkel-venv/bin/pip install snorkel==0.10.0   # once
    .venv/bin/python bench/label_quality.py                        # both sections
    .venv/bin/python bench/label_quality.py --section synthetic --samples 20000 --fit-samples 100000 --seed 1
    .venv/bin/python bench/label_quality.py --section digits      # Postgres as for the other benches
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SNORKEL_PYTHON = "/tmp/snorkel-venv/bin/python"
SNORKEL_INSTALL = "python3 -m venv /tmp/snorkel-venv && /tmp/snorkel-venv/bin/pip install snorkel==0.10.0"
SNORKEL_DEFAULT, SNORKEL_BALANCED = "snorkel LabelModel", "snorkel LabelModel class_balance=dev"
F1_MARGIN, MEAN_F1_GAIN, BAYES_GAP, ECE_TARGET, FIT_TARGET_S = 0.005, 0.03, 0.005, 0.05, 0.5
OUTCOMES = (-1, 1, 0)  # theta columns: P(ABSENT), P(PRESENT), P(ABSTAIN)


def load():
    return os.getloadavg()[0]


# ---------------------------------------------------------------- scenarios (numpy only)


def symmetric(accuracy, coverage):
    return [[coverage * accuracy, coverage * (1 - accuracy), 1 - coverage],
            [coverage * (1 - accuracy), coverage * accuracy, 1 - coverage]]


def draw(theta, truth, rng):
    import numpy as np

    cumulative = np.cumsum(np.asarray(theta, dtype=np.float64), axis=1)[(truth == 1).astype(int)]
    return np.array(OUTCOMES, dtype=np.int8)[(rng.random(len(truth))[:, None] > cumulative[:, :2]).sum(axis=1)]


def log_likelihood_ratio(votes, theta):
    """log P(votes | present) - log P(votes | absent) of one LF's column."""
    import numpy as np

    outcome = np.select([votes == -1, votes == 1], [0, 1], 2)
    theta = np.asarray(theta, dtype=np.float64)
    with np.errstate(divide="ignore"):  # an outcome a one-sided LF never gives is never indexed
        return np.log(theta[1])[outcome] - np.log(theta[0])[outcome]


def generate(thetas, balance, n, seed, family=None, cluster=None):
    """(votes int8 n x m, truth int8, the Bayes-optimal log-odds of PRESENT). family: (theta, copies, copy_rate) appended last:
    a latent vote drawn from theta, each copy repeating it with probability copy_rate, else abstaining. cluster:
    (P(cluster | present), P(cluster | absent), members, agreement) appended last: a hidden +1 / -1 cluster, each
    member voting it with probability agreement, else the other way."""
    import numpy as np

    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < balance, 1, -1).astype(np.int8)
    columns = [draw(theta, truth, rng) for theta in thetas]
    log_odds = np.full(n, np.log(balance / (1 - balance)))
    for column, theta in zip(columns, thetas, strict=True):
        log_odds += log_likelihood_ratio(column, theta)
    if family is not None:
        theta, copies, rate = family
        latent = draw(theta, truth, rng)
        members = np.stack([np.where(rng.random(n) < rate, latent, 0) for _ in range(copies)], axis=1)
        said, sign = (members != 0).sum(axis=1), np.sign(members.sum(axis=1))
        given = []
        for row in theta:  # P(members | class) summed over the latent vote
            spoke = np.where(sign == -1, row[0], row[1]) * rate ** said * (1 - rate) ** (copies - said)
            given.append(np.where(said > 0, spoke, row[2] + (row[0] + row[1]) * (1 - rate) ** copies))
        log_odds += np.log(given[1] / given[0])
        columns += list(members.T)
    if cluster is not None:
        present_rate, absent_rate, size, agreement = cluster
        hidden = np.where(rng.random(n) < np.where(truth == 1, present_rate, absent_rate), 1, -1)
        members = np.stack([np.where(rng.random(n) < agreement, hidden, -hidden) for _ in range(size)], axis=1)
        up = (members == 1).sum(axis=1)
        # P(members | class) summed over the hidden cluster
        given = [rate * agreement ** up * (1 - agreement) ** (size - up)
                 + (1 - rate) * (1 - agreement) ** up * agreement ** (size - up) for rate in (absent_rate, present_rate)]
        log_odds += np.log(given[1] / given[0])
        columns += list(members.T)
    return np.stack(columns, axis=1).astype(np.int8), truth, log_odds


def scenarios(n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    uniform = rng.uniform
    asymmetric = [[[c0 * a0, c0 * (1 - a0), 1 - c0], [c1 * (1 - a1), c1 * a1, 1 - c1]]
                  for a0, a1, c0, c1 in uniform([0.55, 0.55, 0.3, 0.3], [0.95, 0.95, 0.9, 0.9], (10, 4))]
    one_sided = ([[[0, p0, 1 - p0], [0, p1, 1 - p1]] for p0, p1 in uniform([0.003, 0.2], [0.03, 0.5], (5, 2))]
                 + [[[a0, 0, 1 - a0], [a1, 0, 1 - a1]] for a0, a1 in uniform([0.3, 0.1], [0.7, 0.3], (3, 2))])
    return {
        "symmetric": generate([symmetric(a, c) for a, c in uniform([0.55, 0.3], [0.95, 0.8], (10, 2))], 0.2, n,
                              seed),
        "asymmetric": generate(asymmetric, 0.3, n, seed + 1),
        "one-sided": generate(one_sided, 0.15, n, seed + 2),
        "correlated": generate([symmetric(0.9, 0.5)] + [symmetric(a, c) for a, c in
                                                        uniform([0.65, 0.2], [0.85, 0.5], (4, 2))],
                               0.3, n, seed + 3, family=(symmetric(0.65, 0.8), 5, 0.9)),
        "cluster family": generate([symmetric(0.8, 1.0), symmetric(0.85, 0.6)] + [symmetric(a, c) for a, c in
                                                                            uniform([0.6, 0.3], [0.8, 0.7], (2, 2))],
                                   0.4, n, seed + 6, cluster=(0.6, 0.4, 3, 0.9)),
        "few LFs": generate([symmetric(0.8, 0.6), symmetric(0.7, 0.5), symmetric(0.65, 0.7)], 0.3, n, seed + 4),
        "few inverted": generate([symmetric(a, c) for a, c in ((0.25, 0.6), (0.3, 0.5), (0.3, 0.7), (0.35, 0.5))],
                                 0.3, n, seed + 5),
    }


def splits(n, dev, valid, seed):
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    dev_mask, valid_mask = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    dev_mask[order[:dev]] = True
    valid_mask[order[dev:dev + valid]] = True
    return dev_mask, valid_mask


# ---------------------------------------------------------------- snorkel (runs in the snorkel virtualenv)


def snorkel_child(job_path, out_dir):
    """For every votes file of the job: probabilities of LabelModel without and with class_balance, fit times."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import numpy as np
    import snorkel
    from snorkel.labeling.model import LabelModel

    job = json.loads(Path(job_path).read_text())
    results = {"version": snorkel.__version__, "runs": {}}
    for name, entry in job.items():
        votes = np.load(entry["votes"])
        matrix = np.where(votes == 0, -1, np.where(votes == 1, 1, 0)).astype(np.int64)  # -1 abstain, 0 neg, 1 pos
        balance = entry["balance"]
        runs = {}
        for label, class_balance in ((SNORKEL_DEFAULT, None), (SNORKEL_BALANCED, [1 - balance, balance])):
            if entry.get("default_only") and class_balance is not None:
                continue
            model = LabelModel(cardinality=2, verbose=False)
            started = time.perf_counter()
            model.fit(L_train=matrix, n_epochs=500, seed=0, log_freq=100, class_balance=class_balance,
                      progress_bar=False)
            fit_s = time.perf_counter() - started
            path = str(Path(out_dir) / f"{len(results['runs'])}-{len(runs)}.npy")
            np.save(path, model.predict_proba(matrix)[:, 1].astype(np.float32))
            runs[label] = {"fit_s": fit_s, "probability": path, "load": os.getloadavg()[0]}
        results["runs"][name] = runs
    Path(out_dir, "results.json").write_text(json.dumps(results))


def snorkel_missing(python):
    if not Path(python).exists():
        return f"not installed ({SNORKEL_INSTALL})"
    completed = subprocess.run([python, "-c", "import snorkel.labeling.model"], capture_output=True, text=True,
                               timeout=300)
    if completed.returncode != 0:
        return f"unusable: {(completed.stderr.strip().splitlines() or ['import failed'])[-1]}"
    return None


def run_snorkel(python, jobs, workdir):
    """jobs: {name: (votes, dev PRESENT share, default_only)}; returns (version, {name: {label: run}})."""
    import numpy as np

    job = {}
    for index, (name, (votes, balance, default_only)) in enumerate(jobs.items()):
        path = str(Path(workdir) / f"votes-{index}.npy")
        np.save(path, votes)
        job[name] = {"votes": path, "balance": float(balance), "default_only": default_only}
    job_path = Path(workdir) / "job.json"
    job_path.write_text(json.dumps(job))
    command = [python, __file__, "--snorkel-child", str(job_path), str(workdir)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                               env={**os.environ, "TQDM_DISABLE": "1"})
    if completed.returncode != 0:
        raise SystemExit(f"the snorkel subprocess failed ({' '.join(command)}):\n{completed.stderr[-3000:]}")
    results = json.loads((Path(workdir) / "results.json").read_text())
    for runs in results["runs"].values():
        for run in runs.values():
            run["probability"] = np.load(run["probability"])
    return results["version"], results["runs"]


# ---------------------------------------------------------------- figures


def dev_prior(truth, dev_mask):
    """The dev PRESENT share (0.5 without dev labels): every method's stand-in where it says nothing."""
    dev_labels = truth[dev_mask & (truth != 0)]
    return float((dev_labels == 1).mean()) if len(dev_labels) else 0.5


def figures(probability, truth, dev_mask, valid_mask):
    """Accuracy, F1, Brier, ECE of probabilities on the labeled valid rows, with the dev prior as fallback."""
    import numpy as np

    from imagestudio.labeling.calibration import calibration_table
    from imagestudio.labeling.label_choice import score_probabilities

    prior = dev_prior(truth, dev_mask)
    rows = valid_mask & (truth != 0)
    scores = score_probabilities(np.asarray(probability)[rows], truth[rows], prior)
    scores["ece"] = calibration_table(np.where(np.isnan(probability), prior, probability)[rows], truth[rows])["ece"]
    return scores


def evaluate_label_models(votes, truth, dev_mask, valid_mask, seed=0):
    """Per-method figures on the valid rows: majority vote, each candidate of label_class_votes (refit on all
    dev labels) and the chosen one. Returns ({method: figures}, the label_class_votes result, its seconds)."""
    import numpy as np

    from imagestudio.labeling.label_choice import label_class_votes

    started = time.perf_counter()
    result = label_class_votes(votes, np.where(dev_mask, truth, 0).astype(np.int8), dev_mask, seed=seed)
    seconds = time.perf_counter() - started
    methods = {f"ours: {name}": figures(p, truth, dev_mask, valid_mask)
               for name, p in result.candidate_probability.items()}
    methods["majority vote"] = methods.pop("ours: majority_vote")
    methods[f"ours (chosen: {result.chosen})"] = figures(result.labels.probability, truth, dev_mask, valid_mask)
    return methods, result, seconds


def print_table(title, rows):
    header = f"{'method':<42} {'accuracy':>9} {'F1':>7} {'Brier':>7} {'ECE':>7} {'scored':>7} {'load':>5}"
    print(f"\n== {title}\n{header}\n{'-' * len(header)}")
    for name, (scores, load_now) in rows.items():
        cells = [f"{scores[k]:>{w}.4f}" if scores.get(k) is not None else f"{'':>{w}}"
                 for k, w in (("accuracy", 9), ("f1", 7), ("brier", 7), ("ece", 7))]
        print(f"{name:<42} {' '.join(cells)} {scores['scored']:>7d} {load_now:5.2f}")


def fit_times(n, seed, snorkel_python, rounds, workdir):
    import numpy as np

    from imagestudio.labeling.label_choice import label_class_votes
    from imagestudio.labeling.label_model import DawidSkene

    votes, truth, _ = generate([symmetric(a, c) for a, c in np.random.default_rng(seed).uniform(
        [0.55, 0.3], [0.95, 0.8], (20, 2))], 0.2, n, seed)
    dev_mask, _ = splits(n, 300, 0, seed)
    dev_truth = np.where(dev_mask, truth, 0).astype(np.int8)
    DawidSkene().fit(votes[:20_000])  # warm-up (allocator, BLAS threads)
    fit, whole = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        DawidSkene().fit(votes)
        fit.append((time.perf_counter() - started, load()))
    for _ in range(rounds):
        started = time.perf_counter()
        label_class_votes(votes, dev_truth, dev_mask)
        whole.append((time.perf_counter() - started, load()))
    timings = {"ours DawidSkene().fit": fit, "ours label_class_votes (5-fold CV, all candidates)": whole}
    if snorkel_python:
        _, runs = run_snorkel(snorkel_python, {"fit": (votes, 0.2, True)}, workdir)
        run = runs["fit"][SNORKEL_DEFAULT]
        timings["snorkel LabelModel.fit (n_epochs=500)"] = [(run["fit_s"], run["load"])]
    print(f"\n== fit time at {n:,} samples x 20 LFs (one class; median of {rounds} for ours, one snorkel fit)")
    for name, values in timings.items():
        median = statistics.median(v[0] for v in values)
        print(f"{name:<52} {median:7.3f} s  (min {min(v[0] for v in values):.3f})  load {values[-1][1]:.2f}")
    return statistics.median(v[0] for v in fit), statistics.median(v[0] for v in whole)


# ---------------------------------------------------------------- digits: real images through the service


FAST_MODEL_SPACES = ("visual", "joint")
GROUND_TRUTH_SHARE_TARGET = 0.90


def print_lf_table(name, lfs, votes, truth, dev_mask, valid_mask):
    from imagestudio.labeling.metrics import vote_precision

    def precision(column, rows):
        rate = vote_precision(column[rows], truth[rows])
        return f"{rate['value']:.3f} ({rate['trials']:>3})" if rate["trials"] else f"{'-':>11}"

    print(f"\n-- LFs of {name} (precision of the non-abstain votes against ground truth, (votes))")
    print(f"{'LF':<48} {'low':>7} {'high':>7} {'coverage':>8} {'dev precision':>14} {'valid precision':>16}")
    for lf, column in zip(lfs, votes.T, strict=True):
        cut = [f"{v:7.3f}" if v is not None else f"{'-':>7}" for v in (lf.low, lf.high)]
        print(f"{lf.name[:48]:<48} {' '.join(cut)} {(column != 0).mean():8.3f} {precision(column, dev_mask):>14} "
              f"{precision(column, valid_mask):>16}")


def print_disagreements(votes, probability, truth, dev_mask, valid_mask, top=3):
    """The vote patterns (LF columns in the LF table's order) on which ours and the best baseline label the most
    valid rows differently, each with its PRESENT share on dev and on valid: where the two part, and whether dev
    said what valid says. probability: {method: probabilities} of ours and the best baseline, in that order."""
    import numpy as np

    from imagestudio.labeling.label_choice import predicted_present

    prior = dev_prior(truth, dev_mask)
    (ours, ours_p), (baseline, baseline_p) = probability.items()
    ours_present, baseline_present = (predicted_present(np.asarray(p, dtype=np.float64), prior)
                                      for p in (ours_p, baseline_p))
    patterns, pattern_of = np.unique(votes, axis=0, return_inverse=True)
    differ = (ours_present != baseline_present) & valid_mask & (truth != 0)
    counts = np.bincount(pattern_of[differ], minlength=len(patterns))
    print(f"   where {ours} and {baseline} label valid rows differently ({int(differ.sum())} rows), by vote pattern:")
    for index in np.argsort(-counts, kind="stable")[:top]:
        if not counts[index]:
            break
        rows = pattern_of == index
        share = {split: f"{int((truth[rows & mask] == 1).sum())}/{int((rows & mask & (truth != 0)).sum())}"
                 for split, mask in (("dev", dev_mask), ("valid", valid_mask))}
        label = "PRESENT" if ours_present[rows][0] else "ABSENT"
        print(f"   votes {' '.join(f'{v:+d}' for v in patterns[index])}: {counts[index]} valid "
              f"row{'s' if counts[index] > 1 else ''}, ours {label}, "
              f"PRESENT on dev {share['dev']}, on valid {share['valid']}")


def training_set_matches(training_set, label_class, ids, labels):
    """The training set's stored labels of a class equal `labels` (label_class_votes on the same votes)."""
    import numpy as np

    from imagestudio.training.selectors import artifact_arrays

    arrays = artifact_arrays(training_set)
    return np.array_equal(arrays["ids"], ids) and np.array_equal(arrays[f"label_{label_class.id}"], labels)


def ground_truth_reference(dataset, space, digit_of, seed):
    """Per class valid F1 of a logistic regression on the space's vectors trained on the ground truth of train
    (the digits are known here), C chosen on dev by the fast model's own `select_c`: labels everywhere."""
    import _digits
    import numpy as np

    from imagestudio.datasets.models import SPLIT_CODES
    from imagestudio.embeddings.store import encoder_for, matrix_get
    from imagestudio.training import fitting

    matrix = matrix_get(dataset=dataset, record=encoder_for(_digits.ENCODER, space)[1])
    digits = np.array([digit_of[int(i)] for i in matrix.sample_ids])
    train, dev, valid = (matrix.splits == SPLIT_CODES[s] for s in ("train", "dev", "valid"))
    vectors = matrix.features(np.arange(len(matrix.sample_ids)))
    result = {}
    for name in _digits.CLASSES:
        positive = np.array([_digits.digit_classes(int(d))[name] for d in digits])
        fit = fitting.select_c(vectors[train], positive[train], vectors[dev], positive[dev], seed)
        scores = fitting.decision_scores(matrix, fit.coef, fit.intercept)
        result[name] = fitting.evaluate(scores[valid], np.where(positive[valid], 1, -1))["f1"]
    return result


def visual_storage_formats(dataset, digit_of, seed):
    """Memory per sample against valid F1 (the ground-truth reference on train, C on dev) of the visual space as
    scanned (1280-d, bfloat16 rows widened), reduced by PCA fitted on train (to 512 and 256 dimensions, unit
    rows, float16), and as scanned but standardized per dimension on train inside the regression (what a fast
    model does: the standardization folds into its coefficients, so the rows stay as stored)."""
    import _digits
    import numpy as np
    from sklearn.decomposition import PCA

    from imagestudio.datasets.models import SPLIT_CODES
    from imagestudio.embeddings.store import encoder_for, matrix_get
    from imagestudio.training import fitting

    matrix = matrix_get(dataset=dataset, record=encoder_for(_digits.ENCODER, "visual")[1])
    digits = np.array([digit_of[int(i)] for i in matrix.sample_ids])
    train, dev, valid = (matrix.splits == SPLIT_CODES[s] for s in ("train", "dev", "valid"))
    stored = matrix.features(np.arange(len(matrix.sample_ids)))
    formats = {"scan rows 1280-d": (stored, 2 * matrix.dim)}
    for dims in (512, 256):
        reduced = PCA(dims, random_state=seed).fit(stored[train]).transform(stored)
        reduced = (reduced / np.linalg.norm(reduced, axis=1, keepdims=True)).astype(np.float16)
        formats[f"PCA {dims}-d float16"] = (reduced.astype(np.float32), 2 * dims)
    print("\nvisual space storage: bytes per sample against valid F1 (train ground truth, C on dev)")
    for label, (vectors, size) in formats.items():
        f1 = {}
        for name in _digits.CLASSES:
            positive = np.array([_digits.digit_classes(int(d))[name] for d in digits])
            fit = fitting.select_c(vectors[train], positive[train], vectors[dev], positive[dev], seed)
            scores = vectors @ fit.coef + fit.intercept
            f1[name] = fitting.evaluate(scores[valid], np.where(positive[valid], 1, -1))["f1"]
        print(f"  {label:<26} {size:>5} B  mean F1 {np.mean(list(f1.values())):.4f}  "
              + "  ".join(f"{name} {value:.4f}" for name, value in f1.items()) + f"  (load {load():.2f})")


def digits_section(args, snorkel_python, workdir):
    import _common
    import _digits
    import numpy as np

    _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    _common.print_environment("label quality on real images (load_digits through the service)",
                              {"encoder": _digits.ENCODER, "seed": args.seed})
    from imagestudio.annotations.selectors import ground_truth_for
    from imagestudio.datasets.models import SPLIT_CODES, LabelClass, Sample
    from imagestudio.labeling.selectors import vote_matrix
    from imagestudio.training.services import model_start, training_set_start

    user, dataset, rows = _digits.dataset_ready(args.seed, load)
    lfs = _digits.create_lfs(user, dataset, rows, args.seed, load)
    samples = list(Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", "split", "external_id"))
    ids = np.array([s[0] for s in samples], dtype=np.int64)
    codes = np.array([SPLIT_CODES[s[1]] for s in samples])
    dev_mask, valid_mask = codes == SPLIT_CODES["dev"], codes == SPLIT_CODES["valid"]
    digit_by_external_id = {row["external_id"]: row["digit"] for row in rows}
    digit_of = {sample_id: digit_by_external_id[external_id] for sample_id, _, external_id in samples}
    classes = {c.name: c for c in LabelClass.objects.filter(dataset=dataset)}
    truth = {name: ground_truth_for(dataset=dataset, label_class=classes[name], sample_ids=ids)
             for name in _digits.CLASSES}
    votes = {name: vote_matrix(lfs[name], ids) for name in _digits.CLASSES}
    print(f"splits: {', '.join(f'{s} {n}' for s, n in _digits.SPLIT_SIZES)}; ground truth on dev and valid only; "
          f"LF votes read with vote_matrix")
    for name in _digits.CLASSES:
        print_lf_table(name, lfs[name], votes[name], truth[name], dev_mask, valid_mask)

    snorkel_runs = {}
    if snorkel_python:
        jobs = {name: (votes[name], float((truth[name][dev_mask] == 1).mean()), False) for name in _digits.CLASSES}
        version, snorkel_runs = run_snorkel(snorkel_python, jobs, workdir)
        print(f"\nsnorkel {version}: fitted every class in its own process before ours (never interleaved)")
    summary, chosen_labels = {}, {}
    for name in _digits.CLASSES:
        methods, result, seconds = evaluate_label_models(votes[name], truth[name], dev_mask, valid_mask, args.seed)
        table = {method: (scores, load()) for method, scores in methods.items()}
        table.update(snorkel_rows(snorkel_runs.get(name, {}), truth[name], dev_mask, valid_mask))
        print_table(f"digits {name}: {votes[name].shape[1]} LFs, valid balance "
                    f"{(truth[name][valid_mask] == 1).mean():.3f}, dependent groups {result.dependent_groups}, "
                    f"label_class_votes {seconds:.2f} s", table)
        print(f"chosen: {result.chosen} ({result.reason})")
        probability = method_probabilities(result, snorkel_runs.get(name, {}))
        summary[name] = label_f1_summary(table, result.chosen, probability, truth[name], dev_mask, valid_mask,
                                         args.seed)
        print_disagreements(votes[name], {"ours": probability["ours"],
                                          summary[name]["best baseline"]: probability[summary[name]["best baseline"]]},
                            truth[name], dev_mask, valid_mask)
        chosen_labels[name] = result.labels.label
        summary[name]["ece spread"] = ece_of_a_calibrated_predictor(result.labels.probability[valid_mask & (truth[name] != 0)],
                                                                    args.seed)

    started = time.perf_counter()
    training_set, _ = training_set_start(dataset=dataset, user=user, seed=args.seed)
    _digits.succeeded(training_set.job, "training set")
    training_set.refresh_from_db()
    matches = all(training_set_matches(training_set, classes[name], ids, chosen_labels[name])
                  for name in _digits.CLASSES)
    print(f"\ntraining set {training_set.id} built by training_set_start in {time.perf_counter() - started:.1f} s "
          f"(load {load():.2f}); training set matches label_class_votes: {'yes' if matches else 'no'}")

    fast, reference = {}, {}
    for space in FAST_MODEL_SPACES:
        started = time.perf_counter()
        model = model_start(dataset=dataset, user=user, label_source="training_set", training_set=training_set,
                            space=space, seed=args.seed, encoder=_digits.ENCODER)
        _digits.succeeded(model.job, f"fast model ({space})")
        model.refresh_from_db()
        fast[space] = model.metrics
        print(f"fast model v{model.version} ({space}) on the training set's labels: {time.perf_counter() - started:.1f} s "
              f"(load {load():.2f})")
        reference[space] = ground_truth_reference(dataset, space, digit_of, args.seed)
    print_fast_models(fast, reference)
    visual_storage_formats(dataset, digit_of, args.seed)
    return digits_targets(summary, fast, reference, training_set.report, matches)


def print_fast_models(fast, reference):
    import _digits

    header = (f"{'class':<8}" + "".join(f" {space + ' labels':>14} {'ceiling':>8} {'train GT':>9} {'share':>6} "
                                         f"{'fitted':>13}" for space in FAST_MODEL_SPACES))
    print("\n== fast models, valid F1: on the training set (train rows), the service's ground-truth ceiling "
          "(train+dev ground truth, i.e. dev only here), and a logistic regression on the ground truth of train "
          f"(C on dev); share = labels / train GT; fitted = the training set's targets the model kept on dev "
          f"(load {load():.2f})\n{header}\n{'-' * len(header)}")
    for name in [*_digits.CLASSES, "mean"]:
        cells = []
        for space in FAST_MODEL_SPACES:
            labels, ceiling, truth = fast_model_f1(fast, reference, space, name)
            fitted = fast[space][name]["targets"] if name in fast[space] else ""
            cells.append(f" {labels:14.4f} {ceiling:8.4f} {truth:9.4f} {labels / truth:6.2f} {fitted:>13}")
        print(f"{name:<8}{''.join(cells)}")
    visual, joint = (fast_model_f1(fast, reference, space, "mean") for space in FAST_MODEL_SPACES)
    print(f"mean F1 visual vs joint: training-set labels {visual[0]:.4f} vs {joint[0]:.4f} "
          f"({visual[0] / joint[0]:.2f}x); train ground truth {visual[2]:.4f} vs {joint[2]:.4f} "
          f"({visual[2] / joint[2]:.2f}x)")


def fast_model_f1(fast, reference, space, name):
    """(F1 on the training set's labels, the service's ceiling, the train ground-truth reference) of a class or
    their means over the classes (name "mean")."""
    import _digits

    if name == "mean":
        values = [fast_model_f1(fast, reference, space, c) for c in _digits.CLASSES]
        return tuple(statistics.mean(v[k] for v in values) for k in range(3))
    metrics = fast[space][name]
    return metrics["valid"]["f1"], metrics["ceiling"]["valid"]["f1"], reference[space][name]


def label_f1_summary(table, chosen, probability, truth, dev_mask, valid_mask, seed):
    """Label F1 figures of one class / scenario from its print_table rows: ours, the baselines, the best
    candidate's (no rule choosing among the candidates does better on these rows), and the paired bootstrap
    interval of ours minus the best baseline. probability: {method: probabilities} of ours and the baselines."""
    baselines = {method: scores["f1"] for method, (scores, _) in table.items()
                 if method == "majority vote" or method.startswith("snorkel")}
    best = max(baselines, key=baselines.get)
    candidates = [scores["f1"] for method, (scores, _) in table.items() if method.startswith("ours: ")]
    best_name = best.split(" (")[0]  # a snorkel row's name carries its fit time
    return {"f1": table[f"ours (chosen: {chosen})"][0]["f1"], "mv f1": baselines["majority vote"],
            "best baseline": best_name, "best baseline f1": baselines[best], "best candidate f1": max(candidates),
            "snorkel": len(baselines) > 1,
            "difference interval": f1_difference_interval(probability["ours"], probability[best_name], truth,
                                                          dev_mask, valid_mask, seed)}


def f1_difference_interval(ours, baseline, truth, dev_mask, valid_mask, seed, resamples=1000):
    """5th and 95th percentiles of F1(ours) - F1(baseline) over paired bootstrap resamples of the labeled valid
    rows (both labeled by the rule of `figures`): the noise a per-class F1 comparison sits on."""
    import numpy as np

    from imagestudio.labeling.label_choice import paired_bootstrap_f1, predicted_present

    prior = dev_prior(truth, dev_mask)
    rows = valid_mask & (truth != 0)
    predicted = {name: predicted_present(np.asarray(p, dtype=np.float64)[rows], prior)
                 for name, p in (("ours", ours), ("baseline", baseline))}
    f1 = paired_bootstrap_f1(predicted, truth[rows] == 1, seed, resamples)
    difference = f1["ours"] - f1["baseline"]
    return float(np.quantile(difference, 0.05)), float(np.quantile(difference, 0.95))


def check_label_f1(targets, what, s):
    """Labels no worse than the best baseline that ran, within F1_MARGIN; with the figures that say how much of
    a miss is the choice's and how much is noise."""
    against = "max(MV, snorkel default, snorkel balanced)" if s["snorkel"] else "MV (snorkel missing)"
    low, high = s["difference interval"]
    targets.check(f"{what} F1 {s['f1']:.4f} >= {against} - {F1_MARGIN} = {s['best baseline f1'] - F1_MARGIN:.4f}"
                  f" (ours - that baseline, paired bootstrap 5-95%: {low:+.4f} to {high:+.4f}; best candidate "
                  f"{s['best candidate f1']:.4f})", s["f1"] >= s["best baseline f1"] - F1_MARGIN)
    ceiling = s.get("f1 ceiling")
    if ceiling is not None and ceiling < s["best baseline f1"] - F1_MARGIN:
        print(f"         (no labeling within {BAYES_GAP * 100:.1f} pts of the Bayes-optimal accuracy scores above F1 "
              f"{ceiling:.4f} here (the Bayes-optimal labels: {s['bayes f1']:.4f}): a baseline that trades accuracy "
              "for F1 is above it, so this F1 target and the accuracy target cannot both be met)")


def f1_ceiling_at_accuracy(log_odds, truth, rows, gap):
    """The best valid F1 of any labeling whose valid accuracy is within `gap` of the Bayes-optimal labels'.
    Among labelings with k PRESENT labels the k highest true posteriors have the most true positives, so the
    best is a cut of the rows sorted by the true log-odds; a cut only falls between distinct log-odds (rows with
    the same votes are labeled alike)."""
    import numpy as np

    keep = rows & (truth != 0)
    order = np.argsort(-log_odds[keep], kind="stable")
    odds, positive = log_odds[keep][order], truth[keep][order] == 1
    cuts = np.append(np.flatnonzero(np.diff(odds) != 0) + 1, len(odds))  # PRESENT labels at each cut
    true_positive = np.concatenate([[0], np.cumsum(positive)])[np.concatenate([[0], cuts])]
    labeled = np.concatenate([[0], cuts])
    accuracy = (true_positive + (~positive).sum() - (labeled - true_positive)) / len(odds)
    f1 = 2 * true_positive / np.maximum(labeled + positive.sum(), 1)
    bayes_accuracy = accuracy[labeled == (odds >= 0).sum()][0]  # its PRESENT labels end a run of equal log-odds
    return float(f1[accuracy >= bayes_accuracy - gap].max())


def ece_of_a_calibrated_predictor(probability, seed, draws=300):
    """(median, 90th percentile) of the ECE a perfectly calibrated predictor with these probabilities scores on
    as many rows: the truth drawn from the probabilities themselves. The noise an ECE target sits on."""
    import numpy as np

    from imagestudio.labeling.calibration import calibration_table

    rng = np.random.default_rng(seed)
    eces = [calibration_table(probability, np.where(rng.random(len(probability)) < probability, 1, -1))["ece"]
            for _ in range(draws)]
    return float(np.median(eces)), float(np.quantile(eces, 0.9))


def digits_targets(summary, fast, reference, report, matches):
    import _digits

    print(f"\n== digits targets (load {load():.2f})")
    targets = Targets()
    for name, s in summary.items():
        check_label_f1(targets, f"{name:<6} label", s)
    mean_f1 = statistics.mean(s["f1"] for s in summary.values())
    mean_mv = statistics.mean(s["mv f1"] for s in summary.values())
    targets.check(f"mean label F1 {mean_f1:.4f} >= MV mean {mean_mv:.4f} + {MEAN_F1_GAIN}",
                  mean_f1 >= mean_mv + MEAN_F1_GAIN)
    visual, joint = (fast_model_f1(fast, reference, space, "mean") for space in FAST_MODEL_SPACES)
    targets.check(f"fast models visual > joint: mean valid F1 {visual[0]:.4f} > {joint[0]:.4f}", visual[0] > joint[0])
    share = visual[0] / visual[2]
    targets.check(f"fast model (visual) on training-set labels / same features on train ground truth: mean F1 "
                  f"{visual[0]:.4f} / {visual[2]:.4f} = {share:.3f} >= {GROUND_TRUTH_SHARE_TARGET}",
                  share >= GROUND_TRUTH_SHARE_TARGET)
    for name in _digits.CLASSES:
        ece = report[name]["calibration"]["valid"]["ece"]
        median, p90 = summary[name]["ece spread"]
        targets.check(f"{name:<6} ECE of the training set's probabilities on valid {ece:.4f} <= {ECE_TARGET} (a "
                      f"perfectly calibrated predictor here: median {median:.4f}, p90 {p90:.4f})", ece <= ECE_TARGET)
    targets.check("the training set's labels equal label_class_votes on the same votes", matches)
    return targets.met


class Targets:
    """Prints each target as met / MISSED and remembers whether all were met."""

    def __init__(self):
        self.met = True

    def check(self, text, ok):
        self.met &= ok
        print(f"  {'met   ' if ok else 'MISSED'} {text}")


def synthetic_section(args, snorkel_python, workdir):
    import numpy as np

    print(f"\n== synthetic scenarios (seed {args.seed}; {args.samples:,} rows a scenario, {args.dev} dev, "
          f"{args.valid:,} valid)")
    dev_mask, valid_mask = splits(args.samples, args.dev, args.valid, args.seed)
    generated = scenarios(args.samples, args.seed)
    snorkel_runs = {}
    if snorkel_python:
        jobs = {name: (votes, float((truth[dev_mask] == 1).mean()), False)
                for name, (votes, truth, _) in generated.items()}
        version, snorkel_runs = run_snorkel(snorkel_python, jobs, workdir)
        print(f"snorkel {version}: fitted every scenario in its own process before ours (never interleaved)")
    summary = {}
    for name, (votes, truth, log_odds) in generated.items():
        bayes_probability = (log_odds >= 0).astype(np.float32)  # a decision, so its Brier / ECE say little
        rows = {"Bayes-optimal (true parameters)": (figures(bayes_probability, truth, dev_mask, valid_mask), load())}
        methods, result, seconds = evaluate_label_models(votes, truth, dev_mask, valid_mask, args.seed)
        rows.update({method: (scores, load()) for method, scores in methods.items()})
        rows.update(snorkel_rows(snorkel_runs.get(name, {}), truth, dev_mask, valid_mask))
        print_table(f"{name}: {votes.shape[1]} LFs, balance {(truth == 1).mean():.3f}, dependent groups "
                    f"{result.dependent_groups}, label_class_votes {seconds:.2f} s", rows)
        print(f"chosen: {result.chosen} ({result.reason})")
        chosen = rows[f"ours (chosen: {result.chosen})"][0]
        summary[name] = label_f1_summary(rows, result.chosen, method_probabilities(result, snorkel_runs.get(name, {})),
                                         truth, dev_mask, valid_mask, args.seed)
        bayes = rows["Bayes-optimal (true parameters)"][0]
        summary[name].update({"accuracy": chosen["accuracy"], "bayes": bayes["accuracy"], "bayes f1": bayes["f1"],
                              "f1 ceiling": f1_ceiling_at_accuracy(log_odds, truth, valid_mask, BAYES_GAP),
                              "ece": chosen["ece"]})

    fit_s = whole_s = None
    if args.fit_samples:
        fit_s, whole_s = fit_times(args.fit_samples, args.seed, snorkel_python, args.rounds, workdir)

    print(f"\n== synthetic targets (load {load():.2f})")
    targets = Targets()
    for name, s in summary.items():
        check_label_f1(targets, f"{name:<13}", s)
        targets.check(f"{name:<13} accuracy {s['accuracy']:.4f} within {BAYES_GAP * 100:.1f} pts of Bayes-optimal "
                      f"{s['bayes']:.4f} ({(s['accuracy'] - s['bayes']) * 100:+.2f} pts)",
                      s["accuracy"] >= s["bayes"] - BAYES_GAP)
        targets.check(f"{name:<13} ECE on valid {s['ece']:.4f} <= {ECE_TARGET}", s["ece"] <= ECE_TARGET)
    mean_f1 = statistics.mean(s["f1"] for s in summary.values())
    mean_mv = statistics.mean(s["mv f1"] for s in summary.values())
    targets.check(f"mean F1 {mean_f1:.4f} >= MV mean {mean_mv:.4f} + {MEAN_F1_GAIN}", mean_f1 >= mean_mv + MEAN_F1_GAIN)
    if fit_s is not None:
        targets.check(f"DawidSkene().fit at {args.fit_samples:,} x 20 {fit_s:.3f} s <= {FIT_TARGET_S} s",
                      fit_s <= FIT_TARGET_S)
        print(f"  (info) the whole label_class_votes with 5-fold CV of every candidate: {whole_s:.3f} s")
    return targets.met


def method_probabilities(result, snorkel_runs):
    """{method: probabilities} of ours (the chosen candidate, calibrated) and of the baselines, by the method
    names of print_table (a snorkel row's name without its fit time)."""
    return {"ours": result.labels.probability, "majority vote": result.candidate_probability["majority_vote"],
            **{label: run["probability"] for label, run in snorkel_runs.items()}}


def snorkel_rows(runs, truth, dev_mask, valid_mask):
    """print_table rows of one class's snorkel runs."""
    return {f"{label} ({run['fit_s']:.1f} s)": (figures(run["probability"], truth, dev_mask, valid_mask), run["load"])
            for label, run in runs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("synthetic", "digits", "all"), default="all",
                        help="synthetic scenarios, real digit images through the service, or both (default)")
    parser.add_argument("--samples", type=int, default=50_000, help="rows per synthetic scenario")
    parser.add_argument("--dev", type=int, default=300, help="labeled dev rows per scenario")
    parser.add_argument("--valid", type=int, default=10_000, help="held-out rows the figures are computed on")
    parser.add_argument("--fit-samples", type=int, default=500_000, help="rows of the fit-time figure (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="timed fits of ours")
    parser.add_argument("--seed", type=int, default=0, help="scenarios; the digits' splits, captions, exemplars")
    parser.add_argument("--reset-db", action="store_true",
                        help="digits: drop and recreate the bench database first (re-imports and re-embeds)")
    parser.add_argument("--snorkel-python", default=DEFAULT_SNORKEL_PYTHON)
    parser.add_argument("--snorkel-child", nargs=2, metavar=("JOB", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.snorkel_child:
        snorkel_child(*args.snorkel_child)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np

    missing = snorkel_missing(args.snorkel_python)
    print(f"== label quality (section {args.section}, seed {args.seed})")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, load {load():.2f}")
    print(f"snorkel: {missing or args.snorkel_python}")
    snorkel_python = None if missing else args.snorkel_python

    workdir = tempfile.mkdtemp(prefix="label-quality-")
    met = True
    if args.section in ("synthetic", "all"):
        met &= synthetic_section(args, snorkel_python, workdir)
    if args.section in ("digits", "all"):
        met &= digits_section(args, snorkel_python, workdir)
    shutil.rmtree(workdir)
    print(f"load avg at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
