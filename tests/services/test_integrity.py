"""check_integrity: each kind of drift, written past the services, is reported (exit status 1); --repair mends
counters, split counts and LF votes, and says what it could not mend; a clean dataset passes."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import TestCase

from imagestudio.annotations.models import GroundTruthCount
from imagestudio.datasets.models import Dataset
from imagestudio.demo.integrity import integrity_check
from imagestudio.labeling.models import LFVote
from imagestudio.labeling.services import lf_create
from imagestudio.training.models import TrainingSet
from imagestudio.training.services import training_set_start
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(dataset):
    """Samples with ground truth in two splits, a keyword LF on their captions, a built training set."""
    make_samples(dataset, [{"split": "train" if i < 8 else "dev", "metadata": {"caption": "cat" if i % 2 else "dog"},
                            "gt": {"cat": "PRESENT" if i % 2 else "ABSENT"} if i % 3 else {}} for i in range(12)])
    lf = lf_create(dataset=dataset, user=dataset.created_by, label_class=dataset.classes.get(name="cat"),
                   name="says cat", type="pattern", low=0, high=1,
                   config={"field": "caption", "builder": "keyword", "words": ["cat"]})
    with TestCase.captureOnCommitCallbacks(execute=True):
        training_set, _ = training_set_start(dataset=dataset, user=dataset.created_by)
    training_set.refresh_from_db()
    assert training_set.ready
    return dataset, lf, training_set


def check(dataset, *options):
    """(exit status, output) of the command on one dataset."""
    out = io.StringIO()
    try:
        call_command("check_integrity", "--dataset", str(dataset.id), *options, stdout=out)
    except CommandError as exc:
        return 1, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_a_clean_dataset_passes(world):
    dataset, _, _ = world
    assert check(dataset) == (0, "No drift.\n")


def test_a_counter_off_by_one_is_reported_and_repaired(world):
    dataset, _, _ = world
    cat = dataset.classes.get(name="cat")
    GroundTruthCount.objects.filter(label_class=cat, split="dev").update(present=F("present") + 1)
    status, output = check(dataset)
    assert status == 1
    assert "ground_truth_counts: class 'cat'" in output and "split dev" in output
    assert check(dataset, "--repair")[0] == 0
    assert check(dataset) == (0, "No drift.\n")


def test_split_counts_drift_is_reported_and_repaired(world):
    dataset, _, _ = world
    Dataset.objects.filter(pk=dataset.pk).update(split_counts={"train": 8, "dev": 5, "valid": 0, "test": 0})
    status, output = check(dataset)
    assert status == 1 and "split_counts: split dev: stored 5, actual 4" in output
    assert check(dataset, "--repair")[0] == 0
    dataset.refresh_from_db()
    assert dataset.split_counts == {"train": 8, "dev": 4, "valid": 0, "test": 0}


def test_lost_vote_rows_and_stale_vote_blobs_are_reported_and_repaired(world):
    dataset, lf, _ = world
    LFVote.objects.filter(lf=lf, sample_id=LFVote.objects.filter(lf=lf).order_by("sample_id")
                          .values_list("sample_id", flat=True)[0]).delete()
    type(lf).objects.filter(pk=lf.pk).update(votes_absent=b"")
    status, output = check(dataset)
    assert status == 1
    assert "LF 'says cat'" in output and "vote rows: 1 samples differ" in output
    assert "vote blobs: 6 samples differ" in output
    assert check(dataset, "--repair")[0] == 0
    assert check(dataset) == (0, "No drift.\n")
    assert LFVote.objects.filter(lf=lf).count() == 12


def test_a_missing_thumbnail_and_a_corrupted_artifact_are_reported_and_not_repaired(world):
    dataset, _, training_set = world
    sample = dataset.samples.order_by("id").first()
    default_storage.delete(sample.thumbnail)
    default_storage.delete(training_set.artifact)
    default_storage.save(training_set.artifact, ContentFile(b"not the archive that was hashed"))
    status, output = check(dataset, "--repair")
    assert status == 1
    assert f"NOT REPAIRED  dataset {dataset.id}: sample_blobs: sample 's0' ({sample.id}) thumbnail" in output
    assert f"NOT REPAIRED  dataset {dataset.id}: artifacts: training set {training_set.id}" in output
    assert "Repaired 0 of 2 drifts." in output
    report = integrity_check(datasets=[dataset])
    assert [d.check for d in report.remaining] == ["sample_blobs", "artifacts"]


def test_a_missing_artifact_is_reported(world):
    dataset, _, training_set = world
    default_storage.delete(TrainingSet.objects.get(pk=training_set.pk).artifact)
    report = integrity_check(datasets=[dataset])
    assert [(d.check, d.actual) for d in report.found] == [("artifacts", "missing")]


def test_an_unknown_dataset_is_refused(db):
    with pytest.raises(CommandError, match="No dataset with id"):
        call_command("check_integrity", "--dataset", "999999", stdout=io.StringIO())
