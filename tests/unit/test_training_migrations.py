"""training 0003: a database holding a row per scored sample keeps its PRESENT rows and gains scored ranges."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from imagestudio.datasets.models import LabelClass, Sample
from imagestudio.training.models import FastModel, Prediction, ScoredRange

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("training", "0002_alter_prediction_label_class_alter_prediction_model_and_more")
AFTER = ("training", "0003_predictions_present_only_and_scored_ranges")


def test_present_rows_stay_and_scored_samples_become_ranges(dataset):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        samples = Sample.objects.bulk_create(
            Sample(dataset=dataset, split="train", external_id=str(i), file_name=f"{i}.png", original="o",
                   thumbnail="t", width=1, height=1, format="PNG", bytes=1, sha256=f"{i:064d}") for i in range(8))
        ids = [s.id for s in samples]
        cat = LabelClass.objects.get(dataset=dataset, name="cat")
        model = FastModel.objects.create(dataset=dataset, version=1, label_source="ground_truth", ready=True)
        old_prediction = executor.loader.project_state([BEFORE]).apps.get_model("training", "Prediction")
        scored = [0, 1, 2, 4, 5, 7]  # samples 3 and 6 had no embedding
        old_prediction.objects.bulk_create(
            old_prediction(model_id=model.id, label_class_id=cat.id, sample_id=ids[k], score=s,
                           probability=0.5, label=1 if s >= 0 else -1)
            for k, s in zip(scored, [1.0, -1.0, 2.0, 0.5, -0.5, 3.0], strict=True))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert sorted(ScoredRange.objects.filter(model=model).values_list("low", "high")) == [
        (ids[0], ids[2]), (ids[4], ids[5]), (ids[7], ids[7])]
    assert sorted(Prediction.objects.filter(model=model).values_list("sample_id", flat=True)) == [
        ids[0], ids[2], ids[4], ids[7]]
