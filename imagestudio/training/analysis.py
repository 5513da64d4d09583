"""Per-class analysis: LF coverage and conflicts, label model against majority vote on dev, model metrics on
valid, guidance sentences (each with the samples-list filter that shows the cases, as query parameters: the api
layer makes it a link) and the samples most worth annotating next."""

import numpy as np

from imagestudio.annotations.models import GroundTruthCount
from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import locate
from imagestudio.common.errors import ValidationFailed
from imagestudio.common.votes import ABSENT, PRESENT, vote_word
from imagestudio.datasets.models import Dataset, LabelClass, Sample, Split
from imagestudio.labeling import metrics
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.selectors import lf_rows, vote_matrix

from .charts import model_metrics_now
from .models import FastModel, TrainingSet
from .selectors import latest_models_by_class, model_scores, ready_training_set, training_set_staleness, with_learned

LOW_COVERAGE = 0.5
IMPRECISE = 0.7
MIN_PRECISION_TRIALS = 10
MIN_VALID_LABELS = 50
HIGH_CONFLICT = 0.1
WEAK_RATE = 0.8
NEXT_SAMPLES = 20
GUIDANCE_KINDS = ("no_lfs", "low_coverage", "imprecise_lf", "conflicts", "one_sided_labels", "dev_without_votes",
                  "little_ground_truth", "false_negatives", "false_positives")


def _imprecise_lf_tips(name, split, rows, votes, truth):
    """One tip per direction an imprecise LF errs in: each link lists exactly the wrong votes its message counts."""
    tips = []
    for k, row in enumerate(rows):
        precision = row["precision"]
        if precision["trials"] < MIN_PRECISION_TRIALS or precision["value"] >= IMPRECISE:
            continue
        # Wrong more often than right: a threshold cannot fix that, the rule points the other way.
        advice = ("it is wrong more often than right: it may be written the wrong way round (invert it)"
                  if precision["value"] < 0.5 else "tighten its threshold")
        for voted, actual in ((PRESENT, ABSENT), (ABSENT, PRESENT)):
            wrong = int(((votes[:, k] == voted) & (truth == actual)).sum())
            if wrong:
                tips.append({"kind": "imprecise_lf", "message": (
                    f"LF {row['name']!r} is right only {precision['value']:.0%} of the time on labeled samples of "
                    f"{split} ({precision['successes']}/{precision['trials']}); {wrong} of its {vote_word(voted)} "
                    f"votes there are wrong: {advice}."),
                    "samples": {"split": split, "lf_vote": f"{row['lf']}:{vote_word(voted)}",
                                "gt": f"{name}:{vote_word(actual)}"}})
    return tips


def _little_ground_truth_tip(name, valid_labels, valid_samples):
    """Annotate the valid samples still unlabeled; where there are none, valid itself is too small."""
    if valid_samples > valid_labels:
        return {"kind": "little_ground_truth", "message": (
            f"Only {valid_labels} valid samples have ground truth for {name!r}: metrics are unreliable below "
            f"{MIN_VALID_LABELS}; annotate more."), "samples": {"split": Split.VALID, "gt": f"{name}:ABSTAIN"}}
    if not valid_samples:
        return {"kind": "little_ground_truth", "message": (
            f"The valid split is empty: nothing measures {name!r}. Move samples into valid (resample) and annotate "
            "them."), "samples": {}}
    return {"kind": "little_ground_truth", "message": (
        f"Every valid sample has ground truth for {name!r}, but there are only {valid_samples}: metrics are "
        f"unreliable below {MIN_VALID_LABELS}; move more samples into valid (resample) and annotate them."),
        "samples": {"split": Split.VALID}}


def _precision_evidence(dataset, label_class, lfs, split, rows, votes, truth):
    """(split, LF rows, votes, truth) to judge LFs' precision on: the split asked, or dev when it has no ground
    truth of the class (train usually has none, and the imprecise-LF advice vanished there)."""
    if split == Split.DEV or (truth != 0).any():
        return split, rows, votes, truth
    dev = np.fromiter(Sample.objects.filter(dataset=dataset, split=Split.DEV).order_by("id").values_list("id", flat=True),
                      dtype=np.int64)
    dev_votes = vote_matrix(lfs, dev)
    dev_truth = ground_truth_for(dataset=dataset, label_class=label_class, sample_ids=dev)
    return Split.DEV, lf_rows(lfs, label_class, dev_votes, dev_truth), dev_votes, dev_truth


def _one_sided_labels_tip(name, label_report):
    """The training set labels the class on one side only: no model can learn it from that set."""
    if not label_report or not label_report.get("covered") or (label_report["present"] and label_report["absent"]):
        return None
    side, missing = ("ABSENT", "PRESENT") if not label_report["present"] else ("PRESENT", "ABSENT")
    return {"kind": "one_sided_labels", "message": (
        f"The training set labels every sample it labels for {name!r} {side} ({label_report['covered']}; label model "
        f"{label_report['chosen']}): a model cannot learn {name!r} from it. Write LFs that vote {missing} where it "
        f"is, and annotate dev samples of both sides so the label model can be scored and learn."),
        "samples": {"split": Split.DEV, "gt": f"{name}:ABSTAIN"}}


def _dev_without_votes_tip(name, label_report):
    """The set's dev labels exist but no LF of the class votes on any of them: its label model was chosen and
    calibrated on the class balance alone (every candidate's dev F1 tied, at 0 or the prior's)."""
    dev = ((label_report or {}).get("candidates") or {}).get("majority_vote", {}).get("dev") or {}
    lfs = (label_report or {}).get("lfs") or []
    if not dev.get("scored") or not lfs or any(lf["dev"][side]["precision"]["trials"] for lf in lfs
                                               for side in ("present", "absent")):
        return None
    return {"kind": "dev_without_votes", "message": (
        f"No active LF of {name!r} votes on any of the {dev['scored']} labeled dev samples: the label model was chosen "
        "and calibrated on the class balance alone. Write LFs that cover them, or annotate dev samples the LFs vote "
        "on."), "samples": {"split": Split.DEV, "lf_vote": [f"{lf['lf']}:ABSTAIN" for lf in lfs]}}


def _guidance(label_class, split, lfs, rows, votes, truth, coverage, conflicts, model, model_metrics,
              valid_labels, valid_samples, evidence, label_report=None):
    name, tips = label_class.name, []

    def tip(kind, text, **samples_filter):
        tips.append({"kind": kind, "message": text, "samples": samples_filter})

    if not lfs:
        tip("no_lfs", f"{name!r} has no active labeling function: write one for the samples below.",
            split=split, gt=f"{name}:ABSTAIN")
        return tips
    if coverage < LOW_COVERAGE:
        tip("low_coverage", f"The active LFs of {name!r} vote on only {coverage:.0%} of {split}: write LFs for the "
            "samples none of them covers.", split=split, lf_vote=[f"{lf.id}:ABSTAIN" for lf in lfs])
    tips += _imprecise_lf_tips(name, *evidence)
    if conflicts > HIGH_CONFLICT:
        tip("conflicts", f"The LFs of {name!r} disagree on {conflicts:.0%} of {split}: review those samples.",
            split=split, lf_conflict=name)
    tips += [found for found in (_one_sided_labels_tip(name, label_report), _dev_without_votes_tip(name, label_report))
             if found]
    if valid_labels < MIN_VALID_LABELS:
        tips.append(_little_ground_truth_tip(name, valid_labels, valid_samples))
    if model is not None and model_metrics and model_metrics.get("labeled"):
        confusion = model_metrics["confusion"]
        if confusion["fn"] and model_metrics["recall"] < WEAK_RATE and confusion["fn"] >= confusion["fp"]:
            tip("false_negatives", f"The {model} misses {confusion['fn']} {name!r} samples of valid "
                f"(recall {model_metrics['recall']:.0%}): write LFs that catch them.", split=Split.VALID,
                prediction=f"{model.id}:{name}:FN")
        elif confusion["fp"] and model_metrics["precision"] < WEAK_RATE:
            tip("false_positives", f"The {model} wrongly says {name!r} on {confusion['fp']} valid samples "
                f"(precision {model_metrics['precision']:.0%}).", split=Split.VALID,
                prediction=f"{model.id}:{name}:FP")
    return tips


def _next_to_annotate(label_class, ids, votes, truth, model):
    """Unlabeled samples ranked by LF disagreement and model uncertainty."""
    conflict = metrics.conflicted(votes)
    uncertainty = np.zeros(len(ids))
    if model is not None:
        try:
            scored_ids, _, scores = model_scores(model=model, label_class=label_class)
        except ValidationFailed:  # the model was trained for other classes
            scored_ids, scores = ids[:0], np.zeros(0, dtype=np.float32)
        where, hit = locate(scored_ids, ids)
        uncertainty[hit] = 1 - 2 * np.abs(metrics.sigmoid(scores[where[hit]]) - 0.5)
    priority = conflict.astype(float) + uncertainty
    candidates = np.flatnonzero((truth == 0) & (priority > 0))
    ranked = candidates[np.argsort(-priority[candidates], kind="stable")][:NEXT_SAMPLES]
    return [{"sample_id": int(ids[i]), "priority": round(float(priority[i]), 4),
             "reasons": [r for r, on in (("LFs disagree", conflict[i]), ("model uncertain", uncertainty[i] > 0.5)) if on]}
            for i in ranked]


def _label_model_report(training_set, label_class):
    """The training set's report of the class (not of a deleted class that had its name)."""
    entry = training_set.report.get(label_class.name) if training_set else None
    return entry if entry and entry.get("class_id") == label_class.id else None


def _chosen_products(dataset, model_id, training_set_id):
    """(training set, {class id: model}): the ones named, else the latest ready set and each class's latest model."""
    if training_set_id is None:
        training_set = ready_training_set(dataset=dataset)
    elif (training_set := TrainingSet.objects.filter(dataset=dataset, pk=training_set_id, ready=True).first()) is None:
        raise ValidationFailed(f"No ready training set {training_set_id} in this dataset.", field="training_set")
    if model_id is None:
        return training_set, latest_models_by_class(dataset=dataset)
    model = FastModel.objects.filter(dataset=dataset, pk=model_id, ready=True).first()
    if model is None:
        raise ValidationFailed(f"No ready model {model_id} in this dataset.", field="model")
    return training_set, dict.fromkeys(model.params.get("classes", []), model)


def dataset_analysis(*, dataset: Dataset, label_class: LabelClass | None = None, split: str = Split.TRAIN,
                     model: int | None = None, training_set: int | None = None) -> dict:
    """Per class (all, or `label_class`) on `split`, of the named model and training set (by id; default: each
    class's latest ready model, the latest ready set). Each guidance tip's `samples` is the samples-list filter that
    shows its cases: query parameter -> value or list of values."""
    classes = [label_class] if label_class else list(LabelClass.objects.filter(dataset=dataset).order_by("id"))
    training_set, latest = _chosen_products(dataset, model, training_set)
    ids = np.fromiter(Sample.objects.filter(dataset=dataset, split=split).order_by("id").values_list("id", flat=True),
                      dtype=np.int64)
    result = []
    for cls in classes:
        lfs = list(LabelingFunction.objects.filter(dataset=dataset, label_class=cls, active=True).order_by("id"))
        votes = vote_matrix(lfs, ids)
        truth = ground_truth_for(dataset=dataset, label_class=cls, sample_ids=ids)
        coverage = float(metrics.covered(votes).mean()) if len(ids) else 0.0
        conflicts = float(metrics.conflicted(votes).mean()) if len(ids) else 0.0
        counts = GroundTruthCount.objects.filter(label_class=cls, split=Split.VALID).first()
        valid_labels = (counts.present + counts.absent) if counts else 0
        model = latest.get(cls.id)  # the latest (or named) model of this class: another class's leaves it be
        model_metrics, learned = model_metrics_now(model=model, label_class=cls, split=Split.VALID) if model else (None, 0)
        rows = with_learned(lf_rows(lfs, cls, votes, truth), training_set)
        label_report = _label_model_report(training_set, cls)
        result.append({
            "label_class": cls.name,
            "lfs": {"active": len(lfs), "coverage": coverage, "conflicts": conflicts, "per_lf": rows},
            "label_model": label_report,
            "model": {"id": model.id, "version": model.version, "valid": model_metrics, "learned": learned}
            if model else None,
            "valid_labels": valid_labels,
            "guidance": _guidance(cls, split, lfs, rows, votes, truth, coverage, conflicts, model, model_metrics,
                                  valid_labels, dataset.split_counts.get(Split.VALID, 0),
                                  _precision_evidence(dataset, cls, lfs, split, rows, votes, truth), label_report),
            "next_to_annotate": _next_to_annotate(cls, ids, votes, truth, model),
        })
    # The label-model reports are the set's, of its build; say where its inputs moved on since (the model figures
    # beside them are measured now).
    return {"split": split, "training_set": training_set.id if training_set else None,
            "training_set_stale_reasons": training_set_staleness(training_set) if training_set else [],
            "model": max((m.id for m in latest.values()), default=None), "classes": result}
