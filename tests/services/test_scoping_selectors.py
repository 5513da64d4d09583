"""Selectors that decide what a user sees: datasets (no oracle between missing and foreign) and jobs."""

import pytest

from imagestudio.datasets.selectors import dataset_get_visible
from imagestudio.datasets.services import dataset_create, membership_remove, membership_set
from imagestudio.jobs.selectors import job_get, job_list
from imagestudio.pipeline import embeddings_enqueue
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_a_foreign_dataset_reads_like_a_missing_one(dataset, stranger):
    assert dataset_get_visible(user=stranger, dataset_id=dataset.id) is None
    assert dataset_get_visible(user=stranger, dataset_id=dataset.id + 1000) is None


def test_a_removed_member_loses_the_datasets_jobs(dataset, monkeypatch):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    member = make_user("mia")
    membership = membership_set(dataset=dataset, user=member, role="editor")[0]
    job = embeddings_enqueue(dataset=dataset, user=member, encoder_key="conse-offline")
    assert job_get(user=member, job_id=job.id) == job
    membership_remove(membership=membership)
    assert job_get(user=member, job_id=job.id) is None
    assert not job_list(user=member).exists()


def test_job_ids_that_are_no_uuid_name_no_job(owner):
    dataset_create(user=owner, name="x")
    assert job_get(user=owner, job_id="not-a-uuid") is None
