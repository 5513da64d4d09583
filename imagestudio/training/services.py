"""Writes of training: training sets (label model over the active LFs), fast models (a logistic regression per
class) with their stored predictions, and auto-train. The maths lives in fitting.py, the reads in selectors.py."""

import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import consecutive_runs, locate
from imagestudio.common.artifacts import artifact_write
from imagestudio.common.bulk import copy_id_rows
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.common.transactions import read_snapshot
from imagestudio.datasets.models import SPLIT_CODES, Dataset, LabelClass, Sample, Split
from imagestudio.embeddings.matrix import Matrix
from imagestudio.embeddings.store import matrix_get, record_for
from imagestudio.jobs.models import Job, JobKind, JobStatus
from imagestudio.jobs.services import job_enqueue, job_progress, job_wait_for, job_writers_active

from . import fitting
from .class_names import by_current_name
from .models import FastModel, Prediction, ScoredRange, TrainingSet
from .preconditions import ground_truth_required, model_params_check, no_training_labels, train_split_required
from .selectors import artifact_arrays, model_inputs, ready_training_set, training_snapshot
from .set_build import training_set_build, training_set_requested

TRAINING_SET_TASK = "workers.tasks.training.build_training_set"
MODEL_TASK = "workers.tasks.training.train_model"

Progress = Callable[[float, str], None]  # (fraction done 0..1, message)


def _job_progress(job: Job) -> Progress:
    return lambda fraction, message: job_progress(job_id=job.id, progress=fraction, message=message)


def _vote_writers(dataset_id):
    """Jobs whose end changes the LF votes: a refresh; an import (its new samples), and an embeddings job (its new
    vectors), each of which asks for a refresh as it ends."""
    return Job.objects.filter(dataset=dataset_id, kind__in=(JobKind.LF_VOTES, JobKind.IMPORT, JobKind.EMBEDDINGS))


def _votes_settled(job: Job) -> None:
    """A job reading LF votes waits for the vote writers asked for before it (an edit's refresh, an import, an
    embeddings job) and for what those asked for as they ended (an import's refresh and auto-embed, whose vectors
    ask for another refresh): built earlier, its labels would be stale when it finished (a set asked for during an
    import labelled its first batch ABSENT with no LF vote). What a writer asks for as it ends is asked for before
    its last write (`updated_at`, a cancelled job's result included), so the horizon of "asked for before" moves to
    the last write of each writer that ended since, until none did."""
    writers, horizon = _vote_writers(job.dataset_id), job.created_at
    while (ended := writers.filter(created_at__lt=horizon, updated_at__gt=horizon).exclude(
            status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).aggregate(last=Max("updated_at"))["last"]) is not None:
        horizon = ended
    job_wait_for(job=job, writers=writers, what="the refresh of the LF votes or a job changing them (an import, new vectors)",
                 asked_before=horizon)


# ---------------------------------------------------------------- training sets


def training_set_start(*, dataset: Dataset, user: AbstractBaseUser | None, splits: Sequence[str] | None = None,
                       seed: int = 0) -> tuple[TrainingSet, bool]:
    """The training set of the current active LFs: an existing identical snapshot, or a new one built by a job.

    Returns (training set, created)."""
    splits = list(splits or Split.values)
    snapshot, content_hash = training_snapshot(dataset, splits, seed)
    if snapshot["samples"] == 0:
        raise ValidationFailed(f"The dataset has no samples in {', '.join(splits)}: import some first.",
                               code="no_samples", field="splits")
    if job_writers_active(writers=_vote_writers(dataset.id)):
        return _provisional_training_set(dataset, snapshot, user)
    try:
        return _training_set_get_or_create(dataset, content_hash, snapshot, user)
    except IntegrityError:  # a concurrent request created the same snapshot first (committed now): answer that one
        return _training_set_get_or_create(dataset, content_hash, snapshot, user)


PROVISIONAL = "pending-"  # the content hash of a set asked for while the LF votes were refreshed, until it reads them


def _provisional_training_set(dataset, snapshot, user):
    """The votes are being refreshed (an edit, an import): what they will be is not known, so no existing set is
    the answer. A new set, whose job waits for the refresh and then takes the hash of what it reads (set_build); a
    request for the same splits and seed meanwhile gets the same one."""
    for pending in TrainingSet.objects.filter(dataset=dataset, ready=False, content_hash__startswith=PROVISIONAL
                                              ).select_related("job"):
        same = (pending.snapshot["splits"], pending.snapshot.get("seed", 0)) == (snapshot["splits"], snapshot["seed"])
        if same and pending.job is not None and pending.job.is_active:
            training_set_requested(pending)
            return pending, False
    return _training_set_get_or_create(dataset, f"{PROVISIONAL}{uuid.uuid4().hex}", snapshot, user)


def _training_set_get_or_create(dataset, content_hash, snapshot, user):
    with transaction.atomic():
        existing = TrainingSet.objects.select_for_update().filter(dataset=dataset, content_hash=content_hash).first()
        if existing is not None and not existing.ready and existing.job and existing.job.status in (
                JobStatus.FAILED, JobStatus.CANCELLED):
            existing.delete()  # a failed build is not a snapshot: build it again
            existing = None
        if existing is not None:
            training_set_requested(existing)
            return existing, False
        training_set = TrainingSet.objects.create(dataset=dataset, content_hash=content_hash, snapshot=snapshot,
                                                  created_by=user)
        job, _ = job_enqueue(kind="training_set", task_name=TRAINING_SET_TASK, dataset=dataset, creator=user,
                             params={"training_set": training_set.id}, dedupe_key=content_hash)
        TrainingSet.objects.filter(pk=training_set.pk).update(job=job)
    training_set.refresh_from_db()
    return training_set, True


def training_set_run(job: Job) -> dict:
    _votes_settled(job)
    training_set = TrainingSet.objects.select_related("dataset").get(pk=job.params["training_set"])
    return training_set_build(training_set, _job_progress(job))


# ---------------------------------------------------------------- fast models


def _checked_training_set(dataset, training_set):
    """The training set a model trains on: the one named, else the dataset's latest ready one."""
    if training_set is None:
        training_set = ready_training_set(dataset=dataset)
        if training_set is None:
            raise ValidationFailed("No ready training set: build one first (POST training-sets/) or train on "
                                   "ground truth (label_source=ground_truth).", field="training_set")
    elif training_set.dataset_id != dataset.id:
        raise ValidationFailed("The training set belongs to another dataset.", field="training_set")
    elif not training_set.ready:
        raise Conflict("The training set is still being built.", code="not_ready")
    return train_split_required(training_set)


def _next_version(dataset):
    """The dataset's next model version; call it with the dataset row locked."""
    return (FastModel.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0) + 1


def model_start(*, dataset: Dataset, user: AbstractBaseUser | None,
                label_source: str = FastModel.LabelSource.TRAINING_SET, training_set: TrainingSet | None = None,
                ground_truth_splits: Sequence[str] = (Split.TRAIN,), classes: Sequence[LabelClass] | None = None,
                negative_ratio: float | None = None, seed: int = 0, encoder: str | None = None,
                space: str = "visual") -> FastModel:
    """A new model version, trained by a job on the training queue."""
    model_params_check(negative_ratio=negative_ratio, ground_truth_splits=ground_truth_splits)
    if label_source == FastModel.LabelSource.TRAINING_SET:
        training_set = _checked_training_set(dataset, training_set)
    record = record_for(encoder, space)
    matrix_get(dataset=dataset, record=record)  # 409 with a hint when there are no embeddings
    class_ids = list(dict.fromkeys(c.id for c in classes or dataset.classes.order_by("id")))  # a class named twice
    if not class_ids:
        raise ValidationFailed("The dataset has no class to train.", field="classes")
    if label_source == FastModel.LabelSource.GROUND_TRUTH:
        ground_truth_required(class_ids=class_ids, splits=ground_truth_splits)
    params = {"classes": class_ids, "ground_truth_splits": list(ground_truth_splits), "negative_ratio": negative_ratio,
              "seed": seed, "encoder": record.key, "space": space}
    with transaction.atomic():
        # Serialise version numbers; NO KEY UPDATE leaves the foreign-key checks of rows naming the dataset alone.
        Dataset.objects.select_for_update(no_key=True).get(pk=dataset.pk)
        model = FastModel.objects.create(dataset=dataset, version=_next_version(dataset), label_source=label_source,
                                         training_set=training_set, params=params, created_by=user)
        job, _ = job_enqueue(kind="fast_model", task_name=MODEL_TASK, dataset=dataset, creator=user,
                             params={"model": model.id})
        FastModel.objects.filter(pk=model.pk).update(job=job)
    model.refresh_from_db()
    return model


def training_set_rebuild(*, training_set: TrainingSet, user) -> tuple[TrainingSet, bool]:
    """The set of the same splits and seed from the current inputs (the same set when nothing changed)."""
    return training_set_start(dataset=training_set.dataset, user=user, splits=training_set.snapshot["splits"],
                              seed=training_set.snapshot.get("seed", 0))


def model_retrain(*, model: FastModel, user) -> FastModel:
    """A new version with the model's parameters on the current inputs (a training-set model takes the latest
    ready training set: rebuild a stale one first)."""
    params = model.params
    classes = list(LabelClass.objects.filter(dataset=model.dataset, id__in=params["classes"]).order_by("id"))
    if not classes:
        raise ValidationFailed("The model's classes were deleted.", field="classes")
    return model_start(dataset=model.dataset, user=user, label_source=model.label_source,
                       ground_truth_splits=params.get("ground_truth_splits", [Split.TRAIN]), classes=classes,
                       negative_ratio=params.get("negative_ratio"), seed=params.get("seed", 0),
                       encoder=params.get("encoder"), space=params.get("space", "joint"))


def _training_labels(model, label_class, ids, splits, truth):
    """(labels 1 / -1 / 0, P(PRESENT) or None) of the class for the matrix rows: the ground truth `truth` (aligned
    to `ids`), or the training set's labels and probabilities of the rows in train now (one moved to valid: not)."""
    if model.label_source == FastModel.LabelSource.GROUND_TRUTH:
        allowed = np.isin(splits, [SPLIT_CODES[s] for s in model.params["ground_truth_splits"]])
        return np.where(allowed, truth, 0).astype(np.int8), None
    arrays = artifact_arrays(model.training_set)
    labels, probability = np.zeros(len(ids), dtype=np.int8), np.full(len(ids), np.nan, dtype=np.float32)
    if f"label_{label_class.id}" in arrays:
        where, hit = locate(arrays["ids"], ids)
        rows = hit & (splits == SPLIT_CODES[Split.TRAIN])
        labels[rows] = arrays[f"label_{label_class.id}"][where[rows]]
        probability[rows] = arrays[f"probability_{label_class.id}"][where[rows]]
    return labels, probability


def _training_rows(model, label_class, labels, rng):
    """The positive and negative rows to fit on: negatives subsampled to `negative_ratio` per positive."""
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == -1)
    if len(positives) == 0 or len(negatives) == 0:
        raise no_training_labels(label_class, "positive" if not len(positives) else "negative",
                                 model.label_source == FastModel.LabelSource.TRAINING_SET)
    ratio = model.params["negative_ratio"]
    if ratio is not None and len(negatives) > ratio * len(positives):
        negatives = rng.choice(negatives, size=max(1, int(ratio * len(positives))), replace=False)
    return positives, negatives


def _fit_class(model, matrix, rows, targets, truth):
    """The class's regression on `rows` of `targets` (select_targets_and_c's). Targets and C are chosen on the
    dev rows with ground truth when both sides are there and none of them is trained on; by cross-validation
    over `rows` when the model trains on dev rows (scored on its own training rows, the largest C would always
    win), which also gives their out-of-fold scores; else the labels at DEFAULT_C."""
    seed, positive = model.params["seed"], targets["labels"]
    features = matrix.features(rows)
    dev = np.flatnonzero((matrix.splits == SPLIT_CODES[Split.DEV]) & (truth != 0))
    dev_positive = truth[dev] == 1
    if np.isin(dev, rows).any():
        if min(int(positive.sum()), int((~positive).sum())) >= 2:
            return fitting.select_c_by_cv(features, positive, seed, folds=fitting.cross_fit_folds(len(rows)))
    elif dev_positive.any() and not dev_positive.all():
        return fitting.select_targets_and_c(features, targets, matrix.features(dev), dev_positive, seed)
    return fitting.fit_default(features, positive, seed)


def _train_class(model: FastModel, matrix: Matrix, label_class: LabelClass, truth: np.ndarray,
                 rng: np.random.Generator):
    """One class's fit, its scores of every matrix row, its metrics on valid and which rows it scored in-sample."""
    labels, probability = _training_labels(model, label_class, matrix.sample_ids, matrix.splits, truth)
    positives, negatives = _training_rows(model, label_class, labels, rng)
    rows = np.sort(np.concatenate([positives, negatives]))
    targets = {"labels": labels[rows] == 1} if probability is None else {"probabilities": probability[rows],
                                                                         "labels": labels[rows] == 1}
    fit = _fit_class(model, matrix, rows, targets, truth)
    scores = fitting.decision_scores(matrix, fit.coef, fit.intercept)
    in_sample = np.zeros(len(scores), dtype=bool)  # the rows whose score is of a row it learned
    if fit.held_out_scores is not None:
        # Cross-fitting: a model trained on dev rows scores its training rows out-of-fold, so an LF on it is
        # judged on dev (its precision, the label model) by what it says of rows it did not learn.
        scores[rows] = fit.held_out_scores
    else:
        in_sample[rows] = True
    valid = matrix.splits == SPLIT_CODES[Split.VALID]
    class_metrics = {"class_id": label_class.id, "C": fit.c_value, "dev_f1_by_C": fit.dev_f1_by_c,
                     "cv_f1_by_C": fit.cv_f1_by_c, "targets": fit.targets, "dev_f1_by_targets": fit.dev_f1_by_targets,
                     "trained_on": {"positives": int(len(positives)), "negatives": int(len(negatives))},
                     "valid": fitting.evaluate(scores[valid], truth[valid])}
    if model.label_source == FastModel.LabelSource.TRAINING_SET:
        class_metrics["ceiling"] = _ceiling(model, matrix, truth, valid)
    return fit, scores, class_metrics, in_sample


def _ceiling(model, matrix, truth, valid):
    """The same features trained on the ground truth of train and dev (C by cross-validation), evaluated on
    valid: what the training set's labels cost against labels everywhere."""
    rows = np.flatnonzero(np.isin(matrix.splits, [SPLIT_CODES[Split.TRAIN], SPLIT_CODES[Split.DEV]]) & (truth != 0))
    positive = truth[rows] == 1
    if min(int(positive.sum()), int((~positive).sum())) < 2:
        return {"reason": "train and dev hold fewer than 2 ground-truth labels of each side"}
    fit = fitting.select_c_by_cv(matrix.features(rows), positive, model.params["seed"])
    scores = fitting.decision_scores(matrix, fit.coef, fit.intercept)
    return {"C": fit.c_value, "cv_f1_by_C": fit.cv_f1_by_c, "trained_on": int(len(rows)),
            "valid": fitting.evaluate(scores[valid], truth[valid])}


def model_run(job: Job) -> dict:
    model = FastModel.objects.select_related("dataset", "training_set").get(pk=job.params["model"])
    return model_train(model, _job_progress(job))


def _trained(model):
    """What model_train returned, for a model whose results are already stored (a job delivered again after its
    worker died between storing them and recording success)."""
    return {"model": model.id, "version": model.version, "metrics": model.metrics, "seconds": 0.0,
            "already_stored": True}


def model_train(model: FastModel, progress: Progress) -> dict:
    """Fit a logistic regression per class, store the coefficients, predictions and metrics. Stored results
    are all written in one transaction with `ready`, so a ready model is left as it is."""
    if model.ready:
        return _trained(model)
    dataset = model.dataset
    record = record_for(model.params["encoder"], model.params.get("space", "joint"))  # joint: before spaces existed
    with read_snapshot():  # the data, and what staleness compares (`inputs`), as of one moment while writers go on
        matrix = matrix_get(dataset=dataset, record=record)
        inputs = model_inputs(model=model, vectors_identity=record.identity, vectors_version=matrix.version)
        classes = list(LabelClass.objects.filter(id__in=model.params["classes"]).order_by("id"))
        truths = [ground_truth_for(dataset=dataset, label_class=c, sample_ids=matrix.sample_ids) for c in classes]
    rng = np.random.default_rng(model.params["seed"])
    fits, class_metrics, predictions, in_sample = [], {}, {}, {}
    started = time.monotonic()
    for index, (label_class, truth) in enumerate(zip(classes, truths, strict=True)):
        fit, predictions[label_class.id], class_metrics[label_class.id], in_sample[label_class.id] = _train_class(
            model, matrix, label_class, truth, rng)
        fits.append(fit)
        progress((index + 1) / len(classes) * 0.8, f"trained {label_class.name} ({time.monotonic() - started:.1f} s)")
    key, digest = artifact_write(f"datasets/{dataset.id}/models/v{model.version}-{model.id}.npz", {
        "class_ids": np.array([c.id for c in classes], dtype=np.int64), "coef": np.stack([f.coef for f in fits]),
        "intercept": np.array([f.intercept for f in fits], dtype=np.float32), "ids": matrix.sample_ids,
        "splits": matrix.splits, **{f"scores_{class_id}": s for class_id, s in predictions.items()},
        **{f"in_sample_{class_id}": np.packbits(rows) for class_id, rows in in_sample.items()},
    })
    with transaction.atomic():
        if FastModel.objects.select_for_update().filter(pk=model.pk, ready=True).exists():
            return _trained(FastModel.objects.get(pk=model.pk))  # a delivery running at the same time stored first
        _store_predictions(model, matrix.sample_ids, predictions)
        class_metrics = by_current_name(class_metrics)  # a class renamed while it trained (the rename waits here)
        FastModel.objects.filter(pk=model.pk).update(metrics=class_metrics, artifact=key, artifact_sha256=digest,
                                                     params={**model.params, "inputs": inputs}, ready=True)
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


# ---------------------------------------------------------------- auto-train


def _auto_model(job, dataset, label_class, training_set):
    """The model an auto-train job trains: the one a first delivery of the job created (its worker died), or
    a new version."""
    with transaction.atomic():
        Dataset.objects.select_for_update(no_key=True).get(pk=dataset.pk)  # as model_start
        model = FastModel.objects.select_related("dataset", "training_set").filter(job=job).first()
        if model is None:
            record = record_for(None, "visual")
            model = FastModel.objects.create(
                dataset=dataset, version=_next_version(dataset), label_source=FastModel.LabelSource.TRAINING_SET,
                training_set=training_set, job=job, created_by=job.creator,
                params={"classes": [label_class.id], "ground_truth_splits": [Split.TRAIN], "negative_ratio": None,
                        "seed": 0, "encoder": record.key, "space": "visual", "auto": True})
    return model


def auto_train_run(job: Job) -> dict:
    """A training set of the current active LFs (reused when it exists) and a model of the job's class on it."""
    _votes_settled(job)
    dataset = Dataset.objects.get(pk=job.dataset_id)
    label_class = LabelClass.objects.get(pk=job.params["label_class"])

    def progress(share, start):
        return lambda fraction, message: job_progress(job_id=job.id, progress=start + share * fraction,
                                                      message=message)

    try:
        snapshot, content_hash = training_snapshot(dataset, list(Split.values), 0)
    except ValidationFailed:
        return {"skipped": "no active LF"}
    with transaction.atomic():
        training_set, created = TrainingSet.objects.get_or_create(
            dataset=dataset, content_hash=content_hash,
            defaults={"snapshot": snapshot, "created_by": job.creator, "job": job})
    if created or not training_set.ready:  # the build may answer an existing set of the same inputs
        built = training_set_build(training_set, progress(0.4, 0.0))
        training_set = TrainingSet.objects.get(pk=built["training_set"])
    training_set_requested(training_set)
    result = model_train(_auto_model(job, dataset, label_class, training_set), progress(0.6, 0.4))
    return {"training_set": training_set.id, **result}
