"""A model LF's scores: a ready fast model's decision function for one class, registered with labeling."""

import numpy as np

from imagestudio.common.arrays import locate
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.datasets.selectors import split_column
from imagestudio.embeddings.models import EmbeddingSet, EncoderRecord
from imagestudio.embeddings.store import matrix_get
from imagestudio.labeling.config_schemas import ConfigError, check
from imagestudio.labeling.models import LFType
from imagestudio.labeling.score_sources import ScoreSource, score_source_register

from . import fitting
from .models import FastModel
from .selectors import learned_rows, model_coefficients, model_scores

SCHEMA = {
    "type": "object", "title": "Model", "required": ["model_id"],
    "description": "A trained fast model's opinion of the class. Scores its decision function (0 at probability 0.5; "
                   "the model's own threshold); samples embedded after the model trained are scored with its "
                   "coefficients.",
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


def _embedded_since(model, label_class, scored_ids):
    """(ids, scores) of the samples embedded since the model trained, by its stored coefficients: what the model
    says of them, as it would of any new image (its own predictions stay those it stored)."""
    none = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    # The vectors of the exact weights it learned from (an encoder configured anew since has another identity)
    inputs = model.params.get("inputs", {})
    record = EncoderRecord.objects.filter(identity=inputs.get("vectors")).first()
    version = EmbeddingSet.objects.filter(dataset=model.dataset, encoder=record).values_list("version", flat=True).first()
    if record is None or version in (None, inputs.get("vectors_version")):  # none, or none added since
        return none
    try:
        matrix = matrix_get(dataset=model.dataset, record=record)
    except Conflict:  # its vectors are gone: only what it stored
        return none
    rows = np.flatnonzero(~locate(scored_ids, matrix.sample_ids)[1])
    if not len(rows):
        return none
    coef, intercept = model_coefficients(model=model, label_class=label_class)
    return matrix.sample_ids[rows], fitting.decision_scores(matrix, coef, intercept)[rows]


def _column(dataset, label_class, config):
    """The model's scores of the samples it scored, and of those embedded since by its coefficients, with the splits
    they are in now (a model LF's preview of dev is of today's dev); none for a sample it learned and scored
    in-sample that has moved since (to dev, it would flatter the LF)."""
    model = FastModel.objects.select_related("dataset").get(pk=config["model_id"])
    ids, then, scores = model_scores(model=model, label_class=label_class)
    learned = learned_rows(model, label_class, then)
    later_ids, later_scores = _embedded_since(model, label_class, ids)
    if len(later_ids):
        order = np.argsort(np.concatenate([ids, later_ids]), kind="stable")
        ids = np.concatenate([ids, later_ids])[order]
        then = np.concatenate([then, np.full(len(later_ids), -1, dtype=then.dtype)])[order]
        learned = np.concatenate([learned, np.zeros(len(later_ids), dtype=bool)])[order]
        scores = np.concatenate([scores, later_scores.astype(scores.dtype)])[order]
    now_ids, now_splits = split_column(dataset=dataset)
    where, hit = locate(now_ids, ids)
    now = now_splits[where]
    keep = hit & ~(learned & (now != then))
    return ids[keep], now[keep], scores[keep]


def register():
    score_source_register(LFType.MODEL, ScoreSource(schema=SCHEMA, validate=_validate, column=_column))
