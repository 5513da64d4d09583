"""Integrity of training-set and model artifacts: each stored file against the sha256 recorded for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagestudio.common.artifacts import artifact_sha256
from imagestudio.common.integrity import Drift

from .models import FastModel, TrainingSet

if TYPE_CHECKING:
    from imagestudio.datasets.models import Dataset

CHECK = "artifacts"


def artifacts_drift(*, dataset: Dataset) -> list[Drift]:
    """Each artifact missing or changed since it was written (not repairable here: build the training set or
    train the model again)."""
    drifts = []
    for kind, model in (("training set", TrainingSet), ("model", FastModel)):
        for record_id, key, recorded in (model.objects.filter(dataset=dataset).exclude(artifact="").order_by("id")
                                         .values_list("id", "artifact", "artifact_sha256")):
            actual = artifact_sha256(key)
            if actual != recorded:
                drifts.append(Drift(CHECK, dataset.id, f"{kind} {record_id} ({key})", stored=recorded,
                                    actual=actual or "missing", repairable=False, ref=record_id))
    return drifts
