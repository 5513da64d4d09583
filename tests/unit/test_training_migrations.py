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


def test_a_set_without_dev_loses_its_dev_digest_and_reads_stale_for_what_it_did_not_learn(dataset):
    """training 0004: a set built before without the dev split held the dev digest, though it learned from no dev
    label; it loses it. Sets of such splits learn from the dev labels now: it reads stale for that reason, not for a
    dev label change."""
    from imagestudio.training.models import TrainingSet
    from imagestudio.training.selectors import snapshot_hash, training_set_staleness, training_snapshot
    from tests.factories import make_samples

    make_samples(dataset, [{"split": "train"}, {"split": "dev", "gt": {"cat": "PRESENT"}}])
    from imagestudio.labeling.models import LabelingFunction

    LabelingFunction.objects.create(dataset=dataset, label_class=LabelClass.objects.get(dataset=dataset, name="cat"),
                                    name="any", type="pattern", config={"field": "width", "builder": "numeric",
                                                                        "operator": ">=", "value": 0}, high=1)
    snapshot, _ = training_snapshot(dataset, ["train"], 0)
    old = {**{key: value for key, value in snapshot.items() if key != "dev_samples_sha256"},
           "dev_labels_sha256": "a digest of dev labels"}  # as sets were built before
    before = ("training", "0003_predictions_present_only_and_scored_ranges")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:  # the model as it was then (later migrations add columns)
        old_set = executor.loader.project_state([before]).apps.get_model("training", "TrainingSet")
        stored_id = old_set.objects.create(dataset_id=dataset.id, snapshot=old, content_hash=snapshot_hash(old),
                                           ready=True).id
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    stored = TrainingSet.objects.get(pk=stored_id)
    assert stored.snapshot == {**old, "dev_labels_sha256": None} and stored.content_hash == snapshot_hash(stored.snapshot)
    assert training_set_staleness(stored) == ["built without learning from the dev labels, as sets of its splits now do"]


def test_sets_built_before_were_requested_when_they_were_created(dataset):
    """training 0005: the latest set is the ready one asked for last; a set built before was asked for once, at
    its creation."""
    from datetime import timedelta

    from django.utils import timezone

    from imagestudio.training.models import TrainingSet

    before = ("training", "0004_sets_without_dev_read_no_dev_labels")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old_set = executor.loader.project_state([before]).apps.get_model("training", "TrainingSet")
        made = [old_set.objects.create(dataset_id=dataset.id, snapshot={}, content_hash=str(i), ready=True)
                for i in range(2)]
        old_set.objects.filter(pk=made[0].pk).update(created_at=timezone.now() - timedelta(days=1))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    for stored in TrainingSet.objects.filter(pk__in=[m.pk for m in made]):
        assert stored.requested_at == stored.created_at
