"""A model LF's scores: a ready fast model's decision function for one class, registered with labeling."""

from imagestudio.common.errors import ValidationFailed
from imagestudio.labeling.models import LFType
from imagestudio.labeling.score_sources import ScoreSource, score_source_register

from .models import FastModel
from .selectors import model_scores


def _validate(dataset, label_class, config):
    model_id = config.get("model_id")
    model = (FastModel.objects.filter(dataset=dataset, pk=model_id, ready=True).first()
             if isinstance(model_id, int) and not isinstance(model_id, bool) else None)
    if model is None:
        raise ValidationFailed(f"'model_id' must name a trained fast model of this dataset (got {model_id!r}).",
                               field="config", code="model_unavailable")
    if label_class.id not in model.params.get("classes", []):
        raise ValidationFailed(f"Model v{model.version} was not trained for class {label_class.name!r}.",
                               field="config")
    return {"model_id": model.id}


def _column(dataset, label_class, config):
    return model_scores(model=FastModel.objects.get(pk=config["model_id"]), label_class=label_class)


def register():
    score_source_register(LFType.MODEL, ScoreSource(validate=_validate, column=_column))
