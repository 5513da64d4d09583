"""What a fast model's chart screen draws, per class on one split: PR and ROC points, the score histogram by
ground truth, calibration bins and the confusion at the model's threshold, against the current ground truth."""

from collections.abc import Sequence

import numpy as np

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import locate
from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.models import SPLIT_CODES, LabelClass, Sample
from imagestudio.labeling import metrics
from imagestudio.labeling.calibration import calibration_table

from . import curves, fitting
from .models import FastModel
from .selectors import artifact_arrays, learned_rows

# A fast model labels a sample PRESENT where its decision function is 0 or more (probability 0.5).
DECISION_THRESHOLD = 0.0


def _class_charts(label_class, scores, truth, split, points, bins, calibration_bins, learned):
    figures = curves.binary_curves(scores, truth, points)
    if not figures["labeled"]:
        figures["reason"] = (f"No scored sample of split {split} has ground truth for {label_class.name!r}: "
                             "the curves and calibration need some.")
    return {"label_class": label_class.name, "class_id": label_class.id, **figures, "learned": learned,
            "confusion": curves.confusion(scores, truth, DECISION_THRESHOLD),
            "histogram": metrics.histogram(scores, truth, bins),
            "calibration": calibration_table(metrics.sigmoid(scores), truth, calibration_bins)}


def _scored_rows(model, arrays, split):
    """(the artifact's rows of the samples in `split` as it is now, which the model scored; how many it did not
    score): a sample may have moved between splits since training."""
    split_ids = np.fromiter(Sample.objects.filter(dataset=model.dataset_id, split=split).order_by("id")
                            .values_list("id", flat=True), dtype=np.int64)
    where, hit = locate(arrays["ids"], split_ids)
    return where[hit], int((~hit).sum())


def _evidence(model, arrays, label_class, rows, split):
    """Of `rows` (samples now in `split`), those that measure the model on the class: not one it learned the class
    from in another split and moved here since (its score there is in-sample)."""
    moved = arrays["splits"][rows] != SPLIT_CODES[split]
    return rows[~(learned_rows(model, label_class, arrays["splits"])[rows] & moved)]


def model_metrics_now(*, model: FastModel, label_class: LabelClass, split: str) -> tuple[dict | None, int]:
    """(fitting.evaluate's figures of the model for the class on the samples now in `split` against their ground
    truth now (its stored metrics are as of its training), how many samples it learned the class from moved there
    since and are left out); (None, 0) when it has no scores for the class."""
    arrays = artifact_arrays(model)
    if f"scores_{label_class.id}" not in arrays:
        return None, 0
    scored, _ = _scored_rows(model, arrays, split)
    rows = _evidence(model, arrays, label_class, scored, split)
    truth = ground_truth_for(dataset=model.dataset, label_class=label_class, sample_ids=arrays["ids"][rows])
    return fitting.evaluate(arrays[f"scores_{label_class.id}"][rows], truth), int(len(scored) - len(rows))


def model_charts(*, model: FastModel, label_class: LabelClass | None = None, split: str, points: int = 101,
                 bins: int = 40, calibration_bins: int = 10) -> dict:
    """Per class the model was trained for (or `label_class` alone) on the samples of `split` it scored. A 409
    while the model is not ready; a 400 for a class it was not trained for."""
    arrays = artifact_arrays(model)
    trained = model.params.get("classes", [])
    if label_class is not None and label_class.id not in trained:
        raise ValidationFailed(f"The {model} was not trained for class {label_class.name!r}.",
                               field="label_class")
    classes: Sequence[LabelClass] = ([label_class] if label_class is not None
                                     else LabelClass.objects.filter(id__in=trained).order_by("id"))
    rows, unscored = _scored_rows(model, arrays, split)
    charts = []
    for c in (c for c in classes if f"scores_{c.id}" in arrays):
        evidence = _evidence(model, arrays, c, rows, split)
        charts.append(_class_charts(c, arrays[f"scores_{c.id}"][evidence],
                                    ground_truth_for(dataset=model.dataset, label_class=c,
                                                     sample_ids=arrays["ids"][evidence]),
                                    split, points, bins, calibration_bins, int(len(rows) - len(evidence))))
    return {"model": model.id, "version": model.version, "split": split, "threshold": DECISION_THRESHOLD,
            "scored": int(len(rows)), "unscored": unscored, "classes": charts}
