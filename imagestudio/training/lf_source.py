"""A model LF's scores: a ready fast model's decision function for one class, registered with labeling."""

import numpy as np

from imagestudio.common.arrays import locate
from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.models import SPLIT_CODES, Split
from imagestudio.datasets.selectors import split_column
from imagestudio.labeling.config_schemas import ConfigError, check
from imagestudio.labeling.models import LFType
from imagestudio.labeling.score_sources import ScoreSource, score_source_register

from .models import FastModel
from .selectors import model_scores

SCHEMA = {
    "type": "object", "title": "Model", "required": ["model_id"],
    "description": "A trained fast model's opinion of the class. Scores its decision function (0 at probability 0.5; "
                   "the model's own threshold).",
    "properties": {"model_id": {"type": "integer", "minimum": 1,
                                "description": "the id of a ready fast model of this dataset trained for the class"}},
}


def _validate(dataset, label_class, config):
    try:
        model_id = int(check(SCHEMA, config)["model_id"])
    except ConfigError as exc:
        raise ValidationFailed(f"{exc} ({exc.field})", field="config") from None
    model = FastModel.objects.filter(dataset=dataset, pk=model_id, ready=True).first()
    if model is None:
        raise ValidationFailed(f"'model_id' must name a trained fast model of this dataset (got {model_id!r}).",
                               field="config", code="model_unavailable")
    if label_class.id not in model.params.get("classes", []):
        raise ValidationFailed(f"The {model} was not trained for class {label_class.name!r}.",
                               field="config")
    return {"model_id": model.id}


def _learned_in_sample(model):
    """Split codes whose rows the model scored in-sample: its label splits, none where it learned dev rows (then it
    scored every row it learned out-of-fold: services._fit_class)."""
    splits = (model.params.get("ground_truth_splits", [Split.TRAIN])
              if model.label_source == FastModel.LabelSource.GROUND_TRUTH else [Split.TRAIN])
    return [] if Split.DEV in splits else [SPLIT_CODES[split] for split in splits]


def _column(dataset, label_class, config):
    """The model's scores of the samples it scored, with the splits they are in now (a model LF's preview of dev is
    of today's dev); none for a sample it learned in-sample that has moved since (to dev, it would flatter the LF)."""
    model = FastModel.objects.get(pk=config["model_id"])
    ids, then, scores = model_scores(model=model, label_class=label_class)
    now_ids, now_splits = split_column(dataset=dataset)
    where, hit = locate(now_ids, ids)
    now = now_splits[where]
    keep = hit & ~(np.isin(then, _learned_in_sample(model)) & (now != then))
    return ids[keep], now[keep], scores[keep]


def register():
    score_source_register(LFType.MODEL, ScoreSource(schema=SCHEMA, validate=_validate, column=_column))
