"""What a fit needs that can be told before its job is queued."""

from collections.abc import Sequence

from django.db.models import Sum

from imagestudio.annotations.models import GroundTruthCount
from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.models import LabelClass, Split


def ground_truth_lacking(*, class_ids: Sequence[int], splits: Sequence[str]) -> list[str]:
    """'<class>: no PRESENT label' (or ABSENT) for each class whose ground truth in `splits` has none of one side:
    a model of it on ground truth cannot be fit (the job would fail)."""
    totals = dict.fromkeys(class_ids, (0, 0))
    rows = (GroundTruthCount.objects.filter(label_class_id__in=class_ids, split__in=splits).values("label_class_id")
            .annotate(present=Sum("present"), absent=Sum("absent")).order_by())
    totals.update({row["label_class_id"]: (row["present"], row["absent"]) for row in rows})
    names = dict(LabelClass.objects.filter(pk__in=class_ids).values_list("id", "name"))
    return [f"{names[class_id]!r}: no {'PRESENT' if not present else 'ABSENT'} label"
            for class_id, (present, absent) in totals.items() if not present or not absent]


def ground_truth_required(*, class_ids: Sequence[int], splits: Sequence[str]) -> None:
    """ValidationFailed (on ground_truth_splits) naming what ground_truth_lacking finds."""
    if lacking := ground_truth_lacking(class_ids=class_ids, splits=splits):
        raise ValidationFailed(f"Ground truth in {', '.join(splits)}: {'; '.join(lacking)}. Label some there, or "
                               "name other ground_truth_splits.", field="ground_truth_splits")


def model_params_check(*, negative_ratio: float | None, ground_truth_splits: Sequence[str]) -> None:
    if negative_ratio is not None and negative_ratio <= 0:
        raise ValidationFailed("negative_ratio must be above 0.", field="negative_ratio")
    if Split.VALID in ground_truth_splits:  # its metrics would be scored on the rows it learned from
        raise ValidationFailed("A model cannot train on valid: valid measures it.", field="ground_truth_splits")


def train_split_required(training_set):
    """The training set, where it covers the train split: a model fits its train rows' labels (the job would fail
    on a set of other splits, saying the classes had no labels)."""
    if Split.TRAIN not in training_set.snapshot.get("splits", []):
        raise ValidationFailed(f"Training set {training_set.id} covers no train samples (its splits: "
                               f"{', '.join(training_set.snapshot.get('splits', []))}), and a model fits the labels "
                               "of train: build one whose splits include train.", field="training_set")
    return training_set


def no_training_labels(label_class, side, from_training_set):
    """What a fit without labels of one side says: how to get some."""
    hint = (" A class whose LFs only vote PRESENT gets ABSENT labels where they are silent once dev has labels of "
            "both classes." if from_training_set and side == "negative" else "")
    return ValidationFailed(f"Class {label_class.name!r} has no {side} training labels "
                            f"({'training_set' if from_training_set else 'ground_truth'}); label some or add LFs.{hint}")
