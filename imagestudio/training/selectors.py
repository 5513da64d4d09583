"""Reads of training sets and fast models: their artifacts' arrays (cached per process), training labels with
provenance, a model's scores and predictions."""

import hashlib
import json
from collections.abc import Sequence

import numpy as np
from django.db.models import QuerySet

from imagestudio.annotations.selectors import ground_truth_digest
from imagestudio.common.arrays import locate
from imagestudio.common.artifacts import artifact_read
from imagestudio.common.cache import VersionedLRU
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.common.votes import VOTE_WORDS
from imagestudio.datasets.models import SPLIT_CODES, SPLIT_NAMES, Dataset, LabelClass, Split
from imagestudio.datasets.selectors import split_column
from imagestudio.embeddings.models import EmbeddingSet
from imagestudio.jobs.models import JobStatus
from imagestudio.labeling import metrics
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.selectors import lf_summary

from .models import FastModel, TrainingSet

# Artifacts are immutable and named by their content hash: the hash is the key, no version needed.
_artifacts = VersionedLRU("artifacts", max_entries=8, from_database=False)


def split_samples(dataset: Dataset, splits: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids ascending, split codes) of the dataset's samples in `splits` (from the cached split column: every
    staleness check of a list response reads them)."""
    ids, codes = split_column(dataset=dataset)
    keep = np.isin(codes, [SPLIT_CODES[split] for split in splits])
    return ids[keep], codes[keep]


def training_snapshot(dataset: Dataset, splits: Sequence[str], seed: int, *, scoped: bool = True) -> tuple[dict, str]:
    """What a training set of the active LFs would be built from now, and its content hash. Its ground-truth
    digests cover the classes of its LFs (`labels_classes`): no figure of a class without LFs reads ground truth.
    `scoped=False`: every class, as sets recorded before `labels_classes` (their staleness compares the same)."""
    lfs = list(LabelingFunction.objects.filter(dataset=dataset, active=True).select_related("label_class")
               .order_by("id"))
    if not lfs:
        raise ValidationFailed("The dataset has no active labeling function: create or activate one first.",
                               code="no_active_lfs")
    ids, codes = split_samples(dataset, splits)
    class_ids = sorted({lf.label_class_id for lf in lfs}) if scoped else None
    # Identity from content: the rules, the votes they cast, the samples in their splits, the dev labels the
    # label model learns from and the labels its report measures on. Toggling an LF off and on again, or an edit
    # that changes no vote, is the same set.
    snapshot = {
        "lfs": [{"id": lf.id, "class_id": lf.label_class_id, "class": lf.label_class.name, "type": lf.type,
                 "config": lf.config, "low": lf.low, "high": lf.high, "invert": lf.invert, "encoder": lf.encoder,
                 "votes_sha256": hashlib.sha256(bytes(lf.votes_present) + b"|" + bytes(lf.votes_absent)).hexdigest()}
                for lf in lfs],
        "splits": sorted(splits),
        "seed": seed,
        "samples": int(len(ids)),
        "samples_sha256": hashlib.sha256(ids.tobytes() + codes.tobytes()).hexdigest(),
        # Every set's label model learns from the dev labels, whichever splits it labels (set_build).
        "dev_labels_sha256": ground_truth_digest(dataset=dataset, split=Split.DEV, class_ids=class_ids),
        # The report measures the labels and LFs on the ground truth of every split it covers.
        "measured_labels_sha256": {split: ground_truth_digest(dataset=dataset, split=split, class_ids=class_ids)
                                   for split in sorted(set(splits) - {Split.DEV})},
    }
    if Split.DEV not in splits:  # its dev rows are read too (unlabeled ones by the EM), not among `samples`
        snapshot["dev_samples_sha256"] = hashlib.sha256(split_samples(dataset, [Split.DEV])[0].tobytes()).hexdigest()
    if scoped:
        snapshot["labels_classes"] = class_ids
    return snapshot, snapshot_hash(snapshot)


def snapshot_hash(snapshot: dict) -> str:
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()


def _lf_changes(old, new):
    old_lfs, new_lfs = {e["id"]: e for e in old.get("lfs", [])}, {e["id"]: e for e in new.get("lfs", [])}
    reasons = []
    if set(old_lfs) != set(new_lfs):
        reasons.append("active LFs added, removed or deactivated since")
    rule_keys = ("class_id", "type", "config", "low", "high", "invert", "encoder")
    for lf_id in sorted(set(old_lfs) & set(new_lfs)):
        before, now = old_lfs[lf_id], new_lfs[lf_id]
        if any(before.get(key) != now.get(key) for key in rule_keys):
            reasons.append(f"LF {now.get('class')}/{lf_id} changed its rule")
        elif before.get("votes_sha256") != now.get("votes_sha256"):
            reasons.append(f"LF {now.get('class')}/{lf_id} votes differently (new samples, vectors or edits)")
    return reasons


def training_set_staleness(training_set: TrainingSet, current: dict | None = None) -> list[str]:
    """Why the training set no longer matches what its inputs would give now (empty: it is current).
    `current` caches the current snapshots by (splits, seed) across the sets of one request."""
    old = training_set.snapshot
    key = (tuple(old.get("splits", [])), old.get("seed", 0), "labels_classes" in old)
    current = {} if current is None else current
    if key not in current:
        try:
            current[key] = training_snapshot(training_set.dataset, list(key[0]), key[1], scoped=key[2])
        except ValidationFailed:
            current[key] = None
    if current[key] is None:
        return ["the dataset has no active LF now"]
    snapshot, content_hash = current[key]
    if content_hash == training_set.content_hash:
        return []
    reasons = _lf_changes(old, snapshot)
    if old.get("samples_sha256") != snapshot["samples_sha256"]:
        reasons.append("samples were added or moved between splits")
    if old.get("dev_labels_sha256") is None and Split.DEV not in old.get("splits", []):
        reasons.append("built without learning from the dev labels, as sets of its splits now do")
    elif old.get("dev_labels_sha256") != snapshot["dev_labels_sha256"]:
        reasons.append("dev ground truth changed")
    if old.get("dev_samples_sha256", snapshot.get("dev_samples_sha256")) != snapshot.get("dev_samples_sha256"):
        reasons.append("samples were added to or moved into or out of dev (its label model reads them)")
    measured = old.get("measured_labels_sha256")  # absent from sets built before it was recorded: unknown
    reasons += [f"{split} ground truth changed (the report's figures on it)"
                for split, digest in snapshot["measured_labels_sha256"].items()
                if measured is not None and measured.get(split) != digest]
    return reasons or ["its inputs changed"]


def _labels_sha256(dataset, splits, class_ids):
    return {split: ground_truth_digest(dataset=dataset, split=split, class_ids=class_ids)
            for split in sorted(set(splits))}


def model_inputs(*, model: FastModel, vectors_identity: str, vectors_version: int) -> dict:
    """What a model's fit and metrics read besides its own parameters: the vector set's version and the ground
    truth of its classes it learns from (its label splits, dev for C) and is measured on (valid)."""
    splits = [Split.DEV, Split.VALID]
    if model.label_source == FastModel.LabelSource.GROUND_TRUTH:
        splits += model.params.get("ground_truth_splits", [])
    classes = sorted(model.params["classes"])
    return {"vectors": vectors_identity, "vectors_version": vectors_version, "labels_classes": classes,
            "labels_sha256": _labels_sha256(model.dataset, splits, classes)}


def model_staleness(model: FastModel, current: dict | None = None) -> list[str]:
    """Why a ready model no longer matches its inputs (empty: current). `current`: see training_set_staleness."""
    inputs = model.params.get("inputs")
    if not model.ready or inputs is None:
        return []
    reasons = []
    version = EmbeddingSet.objects.filter(dataset=model.dataset_id, encoder__identity=inputs["vectors"]).values_list(
        "version", flat=True).first()
    if version is not None and version != inputs["vectors_version"]:
        reasons.append("vectors were added since")
    # models recorded before `labels_classes` digested every class's labels
    now = _labels_sha256(model.dataset, list(inputs["labels_sha256"]), inputs.get("labels_classes"))
    reasons += [f"{split} ground truth changed" for split in sorted(now) if now[split] != inputs["labels_sha256"][split]]
    if model.training_set is not None:
        reasons += [f"its training set is stale: {reason}" for reason in training_set_staleness(model.training_set,
                                                                                                current)]
    return reasons


def training_set_list(*, dataset: Dataset) -> QuerySet:
    """The dataset's training sets, newest first."""
    return TrainingSet.objects.filter(dataset=dataset).order_by("-id")


def training_set_get(*, dataset: Dataset, training_set_id: int) -> TrainingSet | None:
    return training_set_list(dataset=dataset).filter(pk=training_set_id).first()


def model_list(*, dataset: Dataset) -> QuerySet:
    """The dataset's fast models, newest first."""
    return FastModel.objects.filter(dataset=dataset).order_by("-id")


def artifact_arrays(record: TrainingSet | FastModel) -> dict[str, np.ndarray]:
    """A ready training set's or model's arrays, cached per process by content hash; a 409 saying why not
    otherwise (its job still queued or running, or failed with its error)."""
    if not record.ready:
        status = product_status(record)
        if status == JobStatus.FAILED or status == JobStatus.CANCELLED:
            error = f": {record.job.error.rstrip('.')}" if record.job and record.job.error else ""
            raise Conflict(f"Its job {status}{error}. It holds nothing; ask for it again.", code=f"job_{status}")
        raise Conflict(f"Not ready yet: its job is {status}.", code="not_ready")
    return _artifacts.get(record.artifact_sha256, 0, lambda: artifact_read(record.artifact, record.artifact_sha256))


def product_status(record: TrainingSet | FastModel) -> str:
    """`ready`, or the status of the job that makes it (queued, running, failed, cancelled)."""
    if record.ready:
        return "ready"
    return record.job.status if record.job_id else JobStatus.QUEUED


def ready_training_set(*, dataset: Dataset) -> TrainingSet | None:
    """The dataset's latest ready training set (the ready one whose inputs a request asked for last), or None."""
    return TrainingSet.objects.filter(dataset=dataset, ready=True).order_by("-requested_at", "-id").first()


def _label_entry(arrays, label_class, row):
    probability = float(arrays[f"probability_{label_class.id}"][row])
    votes = arrays[f"votes_{label_class.id}"][row]
    return {
        "probability": None if np.isnan(probability) else probability,
        "label": VOTE_WORDS[int(arrays[f"label_{label_class.id}"][row])],
        "provenance": {str(lf): VOTE_WORDS[int(v)] for lf, v in zip(arrays[f"lfs_{label_class.id}"], votes,
                                                                     strict=True) if v != 0},
    }


def training_labels_page(*, training_set: TrainingSet, split: str | None = None, offset: int = 0,
                         limit: int = 50) -> tuple[int, list[dict]]:
    """Per sample and class: probability, label and provenance (which LF voted what). Returns (count, page)."""
    arrays = artifact_arrays(training_set)
    rows = np.arange(len(arrays["ids"]))
    if split:
        rows = rows[arrays["splits"] == SPLIT_CODES[split]]
    classes = [c for c in LabelClass.objects.filter(dataset=training_set.dataset).order_by("id")
               if f"label_{c.id}" in arrays]
    results = [{"sample_id": int(arrays["ids"][row]), "split": SPLIT_NAMES[int(arrays["splits"][row])],
                "classes": {c.name: _label_entry(arrays, c, row) for c in classes}}
               for row in rows[offset:offset + limit]]
    return int(len(rows)), results


def model_scores(*, model: FastModel, label_class: LabelClass) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample ids, split codes, decision-function scores) of a ready model for one class: what a model LF
    thresholds."""
    arrays = artifact_arrays(model)
    key = f"scores_{label_class.id}"
    if key not in arrays:
        raise ValidationFailed(f"The {model} was not trained for class {label_class.name!r}.",
                               field="config")
    return arrays["ids"], arrays["splits"], arrays[key]


def learned_rows(model: FastModel, label_class: LabelClass, splits: np.ndarray) -> np.ndarray:
    """Which of the model's stored scores are of rows it learned the class from (aligned with its ids; `splits`
    theirs then): as recorded by the fit; for a model stored before that, every row of its label splits, none where
    it learned dev rows (then it scored every row it learned out-of-fold: services._fit_class). Such a row that has
    moved to another split since is not that split's evidence."""
    recorded = artifact_arrays(model).get(f"in_sample_{label_class.id}")
    if recorded is not None:
        return np.unpackbits(recorded, count=len(splits)).astype(bool)
    label_splits = (model.params.get("ground_truth_splits", [Split.TRAIN])
                    if model.label_source == FastModel.LabelSource.GROUND_TRUTH else [Split.TRAIN])
    return np.isin(splits, [] if Split.DEV in label_splits else [SPLIT_CODES[split] for split in label_splits])


def model_coefficients(*, model: FastModel, label_class: LabelClass) -> tuple[np.ndarray, np.float32]:
    """(coefficients, intercept) of a ready model's regression for one class."""
    arrays = artifact_arrays(model)
    row = int(np.flatnonzero(arrays["class_ids"] == label_class.id)[0])
    return arrays["coef"][row], np.float32(arrays["intercept"][row])


class PredictionRows(Sequence):
    """A model's predictions per sample and class (sample ascending, then class), read from its artifact and
    built only for the slice a page asks for."""

    def __init__(self, arrays, classes, sample_id=None, model_id=None):
        self.model_id = model_id
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
            result.append({"model": self.model_id, "sample_id": int(self.ids[row]), "label_class": name, "score": score,
                           "probability": float(metrics.sigmoid(score)),
                           "label": "PRESENT" if score >= 0 else "ABSENT"})
        return result


def ready_model(*, dataset: Dataset, model_id: int | None = None) -> FastModel | None:
    """A ready fast model of the dataset: `model_id`, else the latest; None when there is no such model."""
    models = FastModel.objects.filter(dataset=dataset, ready=True)
    if model_id is not None:
        return models.filter(pk=model_id).first()
    return models.order_by("-id").first()


def latest_models_by_class(*, dataset: Dataset) -> dict[int, FastModel]:
    """Class id -> the newest ready model trained for that class (a model of one class leaves the others' be)."""
    latest = {}
    for model in FastModel.objects.filter(dataset=dataset, ready=True).order_by("-id"):
        for class_id in model.params.get("classes", []):
            latest.setdefault(class_id, model)
    return latest


def model_predictions(*, model: FastModel, label_class: LabelClass | None = None,
                      sample_id: int | None = None) -> PredictionRows:
    """Score, probability and label per sample and class of a ready model, as a sliceable sequence."""
    classes = [label_class] if label_class else list(LabelClass.objects.filter(dataset=model.dataset_id)
                                                     .order_by("id"))
    arrays = artifact_arrays(model)
    if label_class is not None and f"scores_{label_class.id}" not in arrays:
        raise ValidationFailed(f"The {model} was not trained for class {label_class.name!r}.", field="label_class")
    return PredictionRows(arrays, classes, sample_id, model_id=model.id)


def sample_predictions(*, dataset: Dataset, sample_id: int) -> list[dict]:
    """One sample's predictions, per class from that class's latest ready model."""
    latest = latest_models_by_class(dataset=dataset)
    return [row for label_class in LabelClass.objects.filter(dataset=dataset, id__in=latest).order_by("id")
            for row in model_predictions(model=latest[label_class.id], label_class=label_class, sample_id=sample_id)]


_LEARNED_KEYS = ("learned", "implied_precision", "weight", "check", "message")


# What makes an LF the rule a training set read (its snapshot's entry): another class, type, config or threshold is
# another rule, of which the set learned nothing.
_RULE_KEYS = ("class_id", "type", "config", "low", "high", "invert", "encoder")


def _rules_now(lf_ids: Sequence[int]) -> dict[int, dict]:
    rows = LabelingFunction.objects.filter(pk__in=lf_ids).values("id", "label_class_id", *_RULE_KEYS[1:])
    return {row["id"]: {"class_id": row["label_class_id"], **{key: row[key] for key in _RULE_KEYS[1:]}}
            for row in rows}


def with_learned(rows: list[dict], training_set: TrainingSet | None) -> list[dict]:
    """Summary rows of LFs (labeling's lf_rows), each with `learned`: what the label model of `training_set` learned
    of the LF (None where that set did not read it, or read a rule the LF has been edited away from)."""
    learned = {}
    for entry in (training_set.report.values() if training_set else ()):
        for row in entry.get("lfs", []):
            if all(key in row for key in _LEARNED_KEYS):  # a report written before the diagnostics has none
                learned[row["lf"]] = {"training_set": training_set.id, **{key: row[key] for key in _LEARNED_KEYS},
                                      # reports written before these were stored have none
                                      "learned_by": row.get("learned_by"), "labels_from": entry.get("chosen")}
    if learned:
        read = {lf["id"]: {key: lf.get(key) for key in _RULE_KEYS} for lf in training_set.snapshot.get("lfs", [])}
        now = _rules_now(list(learned))
        learned = {lf: values for lf, values in learned.items() if lf in now and read.get(lf) == now[lf]}
    return [{**row, "learned": learned.get(row["lf"])} for row in rows]


def lf_summary_with_learned(*, dataset: Dataset, split: str | None = None, label_class: LabelClass | None = None,
                            active_only: bool = False) -> dict:
    """labeling's lf_summary, with_learned from the latest ready training set."""
    summary = lf_summary(dataset=dataset, split=split, label_class=label_class, active_only=active_only)
    return {**summary, "lfs": with_learned(summary["lfs"], ready_training_set(dataset=dataset))}
