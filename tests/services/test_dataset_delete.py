"""Deleting a dataset while its jobs write: the jobs are cancelled first and a clash is retried, never a 500; the
staged uploads of its imports go with it."""

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from django.test import TestCase

from imagestudio.common.errors import Conflict
from imagestudio.datasets.imports import import_start
from imagestudio.datasets.models import Dataset
from imagestudio.datasets.services import dataset_delete
from imagestudio.jobs.models import Job
from imagestudio.pipeline import embeddings_enqueue
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db


def test_jobs_are_cancelled_and_a_clash_with_their_writes_is_retried(dataset, owner, monkeypatch):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    monkeypatch.setattr("imagestudio.datasets.services.time.sleep", lambda seconds: None)
    job = embeddings_enqueue(dataset=dataset, user=owner, encoder_key="conse-offline")
    seen_statuses, real_delete, calls = [], Dataset.delete, []

    def delete_once_clashing(self, *args, **kwargs):
        calls.append(1)
        seen_statuses.append(Job.objects.get(pk=job.pk).status)
        if len(calls) == 1:  # rows a job committed between the cancel and the delete
            raise IntegrityError("insert or update on table violates foreign key constraint")
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(Dataset, "delete", delete_once_clashing)
    dataset_delete(dataset=dataset)
    assert seen_statuses == ["cancelled", "cancelled"] and not Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_dataset_that_keeps_clashing_is_a_conflict(dataset, monkeypatch):
    monkeypatch.setattr("imagestudio.datasets.services.time.sleep", lambda seconds: None)
    monkeypatch.setattr(Dataset, "delete", lambda self, *a, **k: (_ for _ in ()).throw(IntegrityError("fk")))
    with pytest.raises(Conflict) as refused:
        dataset_delete(dataset=dataset)
    assert refused.value.code == "dataset_busy"


def test_a_delete_rolled_back_at_commit_is_tried_again_and_succeeds(dataset, monkeypatch):
    """A row an import committed meanwhile fails the first delete at commit, after Django cleared the instance's pk:
    the retry deleted a pk-less instance (ValueError, an HTML 500) and left the dataset half imported."""
    monkeypatch.setattr("imagestudio.datasets.services.time.sleep", lambda seconds: None)
    real_delete, attempts = Dataset.delete, []

    def delete_failing_at_commit_once(self, *args, **kwargs):
        attempts.append(self.pk)
        deleted = real_delete(self, *args, **kwargs)  # clears self.pk, as a delete does
        if len(attempts) == 1:
            raise IntegrityError("insert or update on table violates foreign key constraint (deferred)")
        return deleted

    monkeypatch.setattr(Dataset, "delete", delete_failing_at_commit_once)
    dataset_delete(dataset=dataset)
    assert attempts == [attempts[0]] * 2 and not Dataset.objects.filter(pk=attempts[0]).exists()


def test_a_queued_import_leaves_no_staged_file_behind(dataset, owner, monkeypatch):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    with TestCase.captureOnCommitCallbacks(execute=True):
        import_start(dataset=dataset, user=owner, split="train", files=[SimpleUploadedFile("a.png", png_bytes())])
    assert default_storage.listdir("staging")[0]
    with TestCase.captureOnCommitCallbacks(execute=True):
        dataset_delete(dataset=dataset)
    assert default_storage.listdir("staging")[0] == []


def test_a_job_whose_dataset_is_deleted_while_it_runs_stops_quietly(dataset, owner, caplog):
    """Its work then fails on a row that is gone: the worker logged a traceback at ERROR for what a user did."""
    import logging

    from imagestudio.jobs.services import run_job

    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)

    def work(running):
        dataset_delete(dataset=Dataset.objects.get(pk=dataset.pk))
        Dataset.objects.get(pk=dataset.pk)  # what the import read next

    with caplog.at_level(logging.INFO, logger="imagestudio.jobs.services"):
        run_job(job.pk, work)
    [record] = [r for r in caplog.records if str(job.pk) in r.getMessage()]
    assert record.levelno == logging.INFO and record.exc_info is None and "deleted with its dataset" in record.getMessage()
