"""Training sets (label model over the active LFs) and fast models (logistic regression per class)."""

import hashlib
import json
import time
from collections.abc import Sequence

import numpy as np
from django.db import transaction
from django.db.models import Max

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import consecutive_runs, locate
from imagestudio.common.artifacts import artifact_read, artifact_write
from imagestudio.common.bulk import copy_id_rows
from imagestudio.common.cache import VersionedLRU
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.datasets.models import SPLIT_CODES, SPLIT_NAMES, Dataset, LabelClass, Sample, Split
from imagestudio.embeddings.matrix import score
from imagestudio.embeddings.store import encoder_for, matrix_get
from imagestudio.jobs.models import JobStatus
from imagestudio.jobs.services import job_enqueue, job_progress
from imagestudio.labeling import metrics
from imagestudio.labeling.label_model import DawidSkene, MajorityVote, accuracy_on, choose_label_model
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.selectors import vote_array

from .models import FastModel, Prediction, ScoredRange, TrainingSet

TRAINING_SET_TASK = "workers.tasks.training.build_training_set"
MODEL_TASK = "workers.tasks.training.train_model"
C_GRID = (0.1, 1.0, 10.0)  # ascending: each fit starts from the previous one


# ---------------------------------------------------------------- training sets


def _sample_ids(dataset, splits):
    samples = Sample.objects.filter(dataset=dataset, split__in=splits).order_by("id")
    rows = list(samples.values_list("id", "split"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    codes = np.array([SPLIT_CODES[r[1]] for r in rows], dtype=np.int8)
    return ids, codes


def _snapshot(dataset, splits, seed):
    lfs = list(LabelingFunction.objects.filter(dataset=dataset, active=True).select_related("label_class")
               .order_by("id"))
    if not lfs:
        raise ValidationFailed("The dataset has no active labeling function: create or activate one first.",
                               code="no_active_lfs")
    ids, _ = _sample_ids(dataset, splits)
    snapshot = {
        "lfs": [{"id": lf.id, "class_id": lf.label_class_id, "class": lf.label_class.name, "type": lf.type,
                 "config": lf.config, "low": lf.low, "high": lf.high, "invert": lf.invert, "version": lf.version,
                 "encoder": lf.encoder, "votes_updated_at": lf.votes_updated_at.isoformat()
                 if lf.votes_updated_at else None} for lf in lfs],
        "splits": sorted(splits),
        "seed": seed,
        "samples": int(len(ids)),
        "samples_sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
    }
    return snapshot, hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()


def training_set_start(*, dataset, user, splits=None, seed=0):
    """The training set of the current active LFs: an existing identical snapshot, or a new one built by a job.

    Returns (training set, created)."""
    splits = list(splits or Split.values)
    snapshot, content_hash = _snapshot(dataset, splits, seed)
    with transaction.atomic():
        existing = TrainingSet.objects.select_for_update().filter(dataset=dataset, content_hash=content_hash).first()
        if existing is not None and not existing.ready and existing.job and existing.job.status in (
                JobStatus.FAILED, JobStatus.CANCELLED):
            existing.delete()  # a failed build is not a snapshot: build it again
            existing = None
        if existing is not None:
            return existing, False
        training_set = TrainingSet.objects.create(dataset=dataset, content_hash=content_hash, snapshot=snapshot,
                                                  created_by=user)
        job, _ = job_enqueue(kind="training_set", task_name=TRAINING_SET_TASK, dataset=dataset, creator=user,
                             params={"training_set": training_set.id}, dedupe_key=content_hash)
        TrainingSet.objects.filter(pk=training_set.pk).update(job=job)
    training_set.refresh_from_db()
    return training_set, True


def training_set_run(job):
    training_set = TrainingSet.objects.select_related("dataset").get(pk=job.params["training_set"])
    return training_set_build(training_set, lambda fraction, message: job_progress(
        job_id=job.id, progress=fraction, message=message))


def training_set_build(training_set, progress):
    """Run the label model of each class over the snapshot's LF votes and store the result."""
    dataset, snapshot = training_set.dataset, training_set.snapshot
    ids, codes = _sample_ids(dataset, snapshot["splits"])
    lfs = {lf.id: lf for lf in LabelingFunction.objects.filter(id__in=[e["id"] for e in snapshot["lfs"]])}
    by_class = {}
    for entry in snapshot["lfs"]:
        if entry["id"] not in lfs:
            raise Conflict(f"LF {entry['id']} was deleted while the training set was queued; build it again.")
        by_class.setdefault(entry["class_id"], []).append(lfs[entry["id"]])
    arrays, report = {"ids": ids, "splits": codes}, {}
    dev = codes == SPLIT_CODES[Split.DEV]
    for index, label_class in enumerate(LabelClass.objects.filter(dataset=dataset).order_by("id")):
        members = by_class.get(label_class.id, [])
        votes = (np.stack([vote_array(lf, ids) for lf in members], axis=1) if members
                 else np.zeros((len(ids), 0), dtype=np.int8))
        truth = ground_truth_for(dataset=dataset, label_class=label_class, sample_ids=ids)
        if members:
            model, choice = choose_label_model(votes, votes[dev], truth[dev])
            labels = model.predict(votes)
            learned = (DawidSkene().fit(votes).lf_accuracies() if isinstance(model, MajorityVote)
                       else model.lf_accuracies())
        else:
            labels = MajorityVote().predict(votes)
            choice, learned = {"chosen": None, "dev": None, "reason": "no active LF for this class"}, []
        arrays[f"probability_{label_class.id}"] = labels.probability
        arrays[f"label_{label_class.id}"] = labels.label
        arrays[f"votes_{label_class.id}"] = votes
        arrays[f"lfs_{label_class.id}"] = np.array([lf.id for lf in members], dtype=np.int64)
        labeled = truth != 0
        report[label_class.name] = {
            **choice,
            "class_id": label_class.id,
            "covered": int((labels.label != 0).sum()),
            "present": int((labels.label == 1).sum()),
            "absent": int((labels.label == -1).sum()),
            "lfs": [{"lf": lf.id, "name": lf.name, "learned_accuracy": float(learned[k]),
                     "ground_truth_precision": metrics.rate(((votes[:, k] != 0) & labeled
                                                             & (votes[:, k] == truth)).sum(),
                                                            ((votes[:, k] != 0) & labeled).sum())}
                    for k, lf in enumerate(members)],
            "accuracy_on_ground_truth": accuracy_on(labels, truth),
        }
        progress((index + 1) / max(dataset.classes.count(), 1), f"label model for {label_class.name}")
    key, digest = artifact_write(
        f"datasets/{dataset.id}/training-sets/{training_set.id}-{training_set.content_hash[:12]}.npz", arrays)
    TrainingSet.objects.filter(pk=training_set.pk).update(report=report, artifact=key, artifact_sha256=digest,
                                                          samples=len(ids), ready=True)
    return {"training_set": training_set.id, "samples": int(len(ids)), "classes": report}


# Artifacts are immutable and named by their content hash: the hash is the key, no version needed.
_artifacts = VersionedLRU("artifacts", max_entries=8, from_database=False)


def artifact_arrays(record):
    """A ready training set's or model's arrays, cached per process by content hash."""
    if not record.ready:
        raise Conflict("Not ready yet: its job is still running.", code="not_ready")
    return _artifacts.get(record.artifact_sha256, 0, lambda: artifact_read(record.artifact, record.artifact_sha256))


def training_labels_page(*, training_set, split=None, offset=0, limit=50):
    """Per sample and class: probability, label and provenance (which LF voted what)."""
    arrays = artifact_arrays(training_set)
    rows = np.arange(len(arrays["ids"]))
    if split:
        rows = rows[arrays["splits"] == SPLIT_CODES[split]]
    classes = list(LabelClass.objects.filter(dataset=training_set.dataset).order_by("id"))
    words = {1: "PRESENT", -1: "ABSENT", 0: "ABSTAIN"}
    results = []
    for row in rows[offset:offset + limit]:
        entry = {"sample_id": int(arrays["ids"][row]), "split": SPLIT_NAMES[int(arrays["splits"][row])],
                 "classes": {}}
        for label_class in classes:
            if f"label_{label_class.id}" not in arrays:
                continue
            probability = float(arrays[f"probability_{label_class.id}"][row])
            votes = arrays[f"votes_{label_class.id}"][row]
            entry["classes"][label_class.name] = {
                "probability": None if np.isnan(probability) else probability,
                "label": words[int(arrays[f"label_{label_class.id}"][row])],
                "provenance": {str(lf): words[int(v)] for lf, v in zip(arrays[f"lfs_{label_class.id}"], votes,
                                                                       strict=True) if v != 0},
            }
        results.append(entry)
    return int(len(rows)), results


# ---------------------------------------------------------------- fast models


def model_start(*, dataset, user, label_source=FastModel.LabelSource.TRAINING_SET, training_set=None,
                ground_truth_splits=(Split.TRAIN,), classes=None, negative_ratio=None, seed=0, encoder=None):
    if negative_ratio is not None and negative_ratio <= 0:
        raise ValidationFailed("negative_ratio must be above 0.", field="negative_ratio")
    if label_source == FastModel.LabelSource.TRAINING_SET:
        if training_set is None:
            training_set = TrainingSet.objects.filter(dataset=dataset, ready=True).order_by("-id").first()
            if training_set is None:
                raise ValidationFailed("No ready training set: build one first (POST training-sets/) or train on "
                                       "ground truth (label_source=ground_truth).", field="training_set")
        elif training_set.dataset_id != dataset.id:
            raise ValidationFailed("The training set belongs to another dataset.", field="training_set")
        elif not training_set.ready:
            raise Conflict("The training set is still being built.", code="not_ready")
    _, record = encoder_for(encoder)
    matrix_get(dataset=dataset, record=record)  # 409 with a hint when there are no embeddings
    class_ids = [c.id for c in classes] if classes else list(dataset.classes.order_by("id").values_list("id", flat=True))
    if not class_ids:
        raise ValidationFailed("The dataset has no class to train.", field="classes")
    params = {"classes": class_ids, "ground_truth_splits": list(ground_truth_splits), "negative_ratio": negative_ratio,
              "seed": seed, "encoder": record.key}
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)  # serialise version numbers
        version = (FastModel.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0) + 1
        model = FastModel.objects.create(dataset=dataset, version=version, label_source=label_source,
                                         training_set=training_set, params=params, created_by=user)
        job, _ = job_enqueue(kind="fast_model", task_name=MODEL_TASK, dataset=dataset, creator=user,
                             params={"model": model.id})
        FastModel.objects.filter(pk=model.pk).update(job=job)
    model.refresh_from_db()
    return model


def _training_labels(model, label_class, ids, splits, truth):
    """Labels (1 / -1 / 0) of the class for the matrix rows, from the training set or from the ground truth
    `truth` (aligned to `ids`)."""
    if model.label_source == FastModel.LabelSource.GROUND_TRUTH:
        allowed = np.isin(splits, [SPLIT_CODES[s] for s in model.params["ground_truth_splits"]])
        return np.where(allowed, truth, 0).astype(np.int8)
    arrays = artifact_arrays(model.training_set)
    labels = np.zeros(len(ids), dtype=np.int8)
    key = f"label_{label_class.id}"
    if key in arrays:
        where, hit = locate(arrays["ids"], ids)
        train_rows = arrays["splits"][where] == SPLIT_CODES[Split.TRAIN]
        labels[hit & train_rows] = arrays[key][where[hit & train_rows]]
    return labels


def _features(matrix, rows):
    """float32 vectors of the chosen matrix rows (the cached matrix stays float16; only these are widened)."""
    return matrix.vectors.numpy()[rows].astype(np.float32)


def _fit(features, positive, c_value, seed, warm_from=None):
    """Logistic regression; `warm_from`, a model fitted on the same rows with another C, is refitted from
    its solution (far fewer L-BFGS iterations than from zero)."""
    from sklearn.linear_model import LogisticRegression

    model = warm_from or LogisticRegression(max_iter=300, random_state=seed, warm_start=True)
    model.set_params(C=c_value)
    model.fit(features, positive)
    return model


def _select_c(features, positive, dev_features, dev_positive, seed):
    """Fit along C_GRID (ascending, each fit warm-started from the previous) and keep the fit with the best
    F1 on dev (the smallest C on ties). Returns (coef, intercept, C, dev F1 by C)."""
    from sklearn.metrics import f1_score

    fitted, best, selection = None, None, {}
    for c_value in C_GRID:
        fitted = _fit(features, positive, c_value, seed, warm_from=fitted)
        selection[str(c_value)] = float(f1_score(dev_positive, fitted.decision_function(dev_features) >= 0,
                                                 zero_division=0))
        if best is None or selection[str(c_value)] > selection[str(best[2])]:
            best = (fitted.coef_[0].astype(np.float32), np.float32(fitted.intercept_[0]), c_value)
    return (*best, selection)


def _scores(vectors, coef, intercept):
    """Decision function of every matrix row, computed on the float16 matrix itself (widening 500,000 rows to
    float32 would cost ten times the product)."""
    return score(vectors, coef) + np.float32(intercept)


def _evaluate(scores, truth):
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    labeled = truth != 0
    if not labeled.any():
        return {"labeled": 0, "reason": "the valid split has no ground truth for this class"}
    y, predicted = truth[labeled] == 1, scores[labeled] >= 0
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="binary", zero_division=0)
    both = y.any() and (~y).any()
    return {
        "labeled": int(labeled.sum()), "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "pr_auc": float(average_precision_score(y, scores[labeled])) if y.any() else None,
        "roc_auc": float(roc_auc_score(y, scores[labeled])) if both else None,
        "confusion": {"tp": int((y & predicted).sum()), "fp": int((~y & predicted).sum()),
                      "fn": int((y & ~predicted).sum()), "tn": int((~y & ~predicted).sum())},
    }


def model_run(job):
    model = FastModel.objects.select_related("dataset", "training_set").get(pk=job.params["model"])
    return model_train(model, lambda fraction, message: job_progress(job_id=job.id, progress=fraction,
                                                                     message=message))


def _trained(model):
    """What model_train returned, for a model whose results are already stored (a job delivered again after its
    worker died between storing them and recording success)."""
    return {"model": model.id, "version": model.version, "metrics": model.metrics, "seconds": 0.0,
            "already_stored": True}


def model_train(model, progress):
    """Fit a logistic regression per class, store the coefficients, predictions and metrics. Stored results
    are all written in one transaction with `ready`, so a ready model is left as it is."""
    if model.ready:
        return _trained(model)
    dataset, params = model.dataset, model.params
    _, record = encoder_for(params["encoder"])
    matrix = matrix_get(dataset=dataset, record=record)
    ids, splits = matrix.sample_ids, matrix.splits
    valid, dev_split = splits == SPLIT_CODES[Split.VALID], splits == SPLIT_CODES[Split.DEV]
    rng = np.random.default_rng(params["seed"])
    coefs, intercepts, class_metrics, predictions = [], [], {}, {}
    classes = list(LabelClass.objects.filter(id__in=params["classes"]).order_by("id"))
    started = time.monotonic()
    for index, label_class in enumerate(classes):
        truth = ground_truth_for(dataset=dataset, label_class=label_class, sample_ids=ids)
        labels = _training_labels(model, label_class, ids, splits, truth)
        positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == -1)
        if len(positives) == 0 or len(negatives) == 0:
            raise ValidationFailed(f"Class {label_class.name!r} has no {'positive' if not len(positives) else 'negative'}"
                                   f" training labels ({model.label_source}); label some or add LFs.")
        ratio = params["negative_ratio"]
        if ratio is not None and len(negatives) > ratio * len(positives):
            negatives = rng.choice(negatives, size=max(1, int(ratio * len(positives))), replace=False)
        rows = np.sort(np.concatenate([positives, negatives]))
        features, positive = _features(matrix, rows), labels[rows] == 1
        dev = np.flatnonzero(dev_split & (truth != 0))
        if (truth[dev] == 1).any() and (truth[dev] == -1).any():
            coef, intercept, chosen_c, selection = _select_c(features, positive, _features(matrix, dev),
                                                             truth[dev] == 1, params["seed"])
        else:
            fitted = _fit(features, positive, 1.0, params["seed"])
            coef, intercept, chosen_c, selection = (fitted.coef_[0].astype(np.float32),
                                                    np.float32(fitted.intercept_[0]), 1.0, None)
        del features
        scores = _scores(matrix.vectors, coef, intercept)
        class_metrics[label_class.name] = {"class_id": label_class.id, "C": chosen_c, "dev_f1_by_C": selection,
                                           "trained_on": {"positives": int(len(positives)),
                                                          "negatives": int(len(negatives))},
                                           "valid": _evaluate(scores[valid], truth[valid])}
        coefs.append(coef)
        intercepts.append(intercept)
        predictions[label_class.id] = scores
        progress((index + 1) / len(classes) * 0.8, f"trained {label_class.name} ({time.monotonic() - started:.1f} s)")
    key, digest = artifact_write(f"datasets/{dataset.id}/models/v{model.version}-{model.id}.npz", {
        "class_ids": np.array([c.id for c in classes], dtype=np.int64), "coef": np.stack(coefs),
        "intercept": np.array(intercepts, dtype=np.float32), "ids": ids, "splits": splits,
        **{f"scores_{class_id}": s for class_id, s in predictions.items()},
    })
    with transaction.atomic():
        if FastModel.objects.select_for_update().filter(pk=model.pk, ready=True).exists():
            return _trained(FastModel.objects.get(pk=model.pk))  # a delivery running at the same time stored first
        _store_predictions(model, ids, predictions)
        FastModel.objects.filter(pk=model.pk).update(metrics=class_metrics, artifact=key, artifact_sha256=digest,
                                                     ready=True)
    return {"model": model.id, "version": model.version, "metrics": class_metrics,
            "seconds": round(time.monotonic() - started, 3)}


def _scored_ranges(dataset, ids):
    """`ids` (ascending, all of the dataset) as runs of consecutive dataset samples: (lows, highs)."""
    counts = Dataset.objects.filter(pk=dataset.pk).values_list("split_counts", flat=True).get()
    if sum(counts.values()) == len(ids):  # every sample scored (samples are never deleted one by one)
        return ids[:1], ids[-1:]
    dataset_ids = Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)
    return consecutive_runs(np.fromiter(dataset_ids.iterator(chunk_size=50_000), dtype=np.int64), ids)


def _store_predictions(model, ids, predictions):
    """The scored samples as ranges and a row per PRESENT prediction; ABSENT is the rest of the ranges."""
    lows, highs = _scored_ranges(model.dataset, ids)
    ScoredRange.objects.bulk_create(ScoredRange(model=model, low=int(low), high=int(high))
                                    for low, high in zip(lows, highs, strict=True))
    copy_id_rows(Prediction, ("model_id", "label_class_id", "sample_id"),
                 [((model.id, class_id), ids[scores >= 0], ()) for class_id, scores in predictions.items()])


def model_scores(*, model, label_class):
    """(sample ids, split codes, decision-function scores) of a ready model for one class: what a model LF
    thresholds."""
    arrays = artifact_arrays(model)
    key = f"scores_{label_class.id}"
    if key not in arrays:
        raise ValidationFailed(f"Model v{model.version} was not trained for class {label_class.name!r}.",
                               field="config")
    return arrays["ids"], arrays["splits"], arrays[key]


class PredictionRows(Sequence):
    """A model's predictions per sample and class (sample ascending, then class), read from its artifact and
    built only for the slice a page asks for."""

    def __init__(self, arrays, classes, sample_id=None):
        self.ids = arrays["ids"]
        self.classes = [(c.name, arrays[f"scores_{c.id}"]) for c in classes if f"scores_{c.id}" in arrays]
        self.rows = np.arange(len(self.ids))
        if sample_id is not None:
            where, hit = locate(self.ids, [sample_id])
            self.rows = where[hit]

    def __len__(self):
        return len(self.rows) * len(self.classes)

    def __getitem__(self, window):
        positions = range(len(self))[window]
        if isinstance(positions, int):
            return self[positions:positions + 1][0]
        width = len(self.classes)
        result = []
        for position in positions:
            row = self.rows[position // width]
            name, scores = self.classes[position % width]
            score = float(scores[row])
            result.append({"sample_id": int(self.ids[row]), "label_class": name, "score": score,
                           "probability": float(metrics.sigmoid(score)),
                           "label": "PRESENT" if score >= 0 else "ABSENT"})
        return result


def ready_model(*, dataset, model_id=None):
    """A ready fast model of the dataset: `model_id`, else the latest; None when there is no such model."""
    models = FastModel.objects.filter(dataset=dataset, ready=True)
    if model_id is not None:
        return models.filter(pk=model_id).first()
    return models.order_by("-id").first()


def model_predictions(*, model, label_class=None, sample_id=None):
    """Score, probability and label per sample and class of a ready model, as a sliceable sequence."""
    classes = [label_class] if label_class else list(LabelClass.objects.filter(dataset=model.dataset_id)
                                                     .order_by("id"))
    return PredictionRows(artifact_arrays(model), classes, sample_id)


# ---------------------------------------------------------------- auto-train

def auto_train_run(job):
    dataset = Dataset.objects.get(pk=job.dataset_id)
    label_class = LabelClass.objects.get(pk=job.params["label_class"])

    def progress(share, start):
        return lambda fraction, message: job_progress(job_id=job.id, progress=start + share * fraction,
                                                      message=message)

    try:
        snapshot, content_hash = _snapshot(dataset, list(Split.values), 0)
    except ValidationFailed:
        return {"skipped": "no active LF"}
    with transaction.atomic():
        training_set, created = TrainingSet.objects.get_or_create(
            dataset=dataset, content_hash=content_hash,
            defaults={"snapshot": snapshot, "created_by": job.creator, "job": job})
    if created or not training_set.ready:
        training_set_build(training_set, progress(0.4, 0.0))
        training_set.refresh_from_db()
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        # A delivery again (its worker died) goes on with the model the first one created.
        model = FastModel.objects.select_related("dataset", "training_set").filter(job=job).first()
        if model is None:
            version = (FastModel.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0) + 1
            _, record = encoder_for(None)
            model = FastModel.objects.create(
                dataset=dataset, version=version, label_source=FastModel.LabelSource.TRAINING_SET,
                training_set=training_set, job=job, created_by=job.creator,
                params={"classes": [label_class.id], "ground_truth_splits": [Split.TRAIN], "negative_ratio": None,
                        "seed": 0, "encoder": record.key, "auto": True})
    result = model_train(model, progress(0.6, 0.4))
    return {"training_set": training_set.id, **result}
