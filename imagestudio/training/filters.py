"""Sample filter term on a model's predictions: `prediction=<model id>:<class>:<PRESENT|ABSENT|TP|FP|FN|TN>`;
TP..TN compare the prediction with the ground truth."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from imagestudio.annotations.models import Annotation, GroundTruthValue
from imagestudio.common.ids import parse_id
from imagestudio.datasets.filters import FilterError, FilterTerm, filter_term_register

from .models import FastModel, Prediction, ScoredRange

PREDICTION_BUCKETS = ("TP", "FP", "FN", "TN")  # a prediction against the ground truth
PREDICTION_WORDS = ("PRESENT", "ABSENT", *PREDICTION_BUCKETS)


def _resolve(dataset, condition, classes):
    model, _, rest = condition.partition(":")
    class_ref, _, word = rest.rpartition(":")
    model_id = parse_id(model)
    if model_id is None or not class_ref or word.upper() not in PREDICTION_WORDS:
        raise FilterError(f"{condition!r} must read <model id>:<class>:<{'|'.join(PREDICTION_WORDS)}>.")
    model = FastModel.objects.filter(dataset=dataset, pk=model_id).first()
    if model is None:
        raise FilterError(f"The dataset has no model {model_id}.")
    class_id = classes(class_ref)
    if class_id not in model.params.get("classes", []):  # it predicts nothing of the class: every bucket would lie
        raise FilterError(f"The {model} was not trained for class {class_ref!r}.")
    return model_id, class_id, word.upper()


def _apply(queryset, value):
    model_id, class_id, word = value
    present = Exists(Prediction.objects.filter(model_id=model_id, label_class_id=class_id, sample_id=OuterRef("pk")))
    if word in ("PRESENT", "TP", "FP"):
        queryset = queryset.filter(present)
    else:  # scored, and no PRESENT row
        scored = ScoredRange.objects.filter(model_id=model_id, low__lte=OuterRef("pk"), high__gte=OuterRef("pk"))
        queryset = queryset.filter(Exists(scored), ~present)
    if word in PREDICTION_BUCKETS:
        actual = GroundTruthValue.PRESENT if word in ("TP", "FN") else GroundTruthValue.ABSENT
        truth = Annotation.objects.filter(sample_id=OuterRef("pk"), label_class_id=class_id, value=actual)
        queryset = queryset.filter(Exists(truth))
    return queryset


def register() -> None:
    filter_term_register(FilterTerm(key="prediction", resolve=_resolve, apply=_apply))
