"""LF types whose scores come from a domain downstream of labeling (a model LF reads a trained model's scores).
That domain registers its source when its app is ready, so labeling never imports it."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoreSource:
    # The config's JSON Schema (config_schemas), with a title and description: what lf-types publishes
    schema: dict
    # (dataset, label_class, config) -> the normalized config, or ValidationFailed; checks `schema` first
    validate: Callable[..., dict]
    # (dataset, label_class, config) -> (sample ids ascending, split codes, float32 scores) over the dataset
    column: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


_sources: dict[str, ScoreSource] = {}


def score_source_register(lf_type: str, source: ScoreSource) -> None:
    _sources[lf_type] = source


def score_source(lf_type: str) -> ScoreSource | None:
    return _sources.get(lf_type)
