"""What follows what: follow-up jobs are enqueued by the pipeline, deduplicated, and only where they apply."""

import pytest

from imagestudio import pipeline
from imagestudio.datasets.services import dataset_update
from imagestudio.jobs.models import Job
from imagestudio.jobs.services import job_claim
from imagestudio.labeling.services import lf_create
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_not_run(monkeypatch):
    """Record the follow-ups without running them: the pipeline's job is to enqueue."""
    return lambda: monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)


def test_after_import_embeds_only_when_asked_and_refreshes_only_with_lfs(dataset, owner, queued_not_run):
    queued_not_run()
    assert pipeline.after_import(dataset=dataset, user=owner) == {}
    dataset_update(dataset=dataset, auto_embed=True)
    follow_ups = pipeline.after_import(dataset=dataset, user=owner)
    assert set(follow_ups) == {"auto_embed_job"}
    assert Job.objects.get(pk=follow_ups["auto_embed_job"]).kind == "embeddings"


def test_refresh_requests_coalesce_into_the_job_in_flight(dataset, owner, queued_not_run):
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=0.5)
    queued_not_run()
    first = pipeline.after_embeddings(dataset=dataset, user=owner)
    assert first is not None and pipeline.after_embeddings(dataset=dataset, user=owner).id == first.id


def test_auto_train_follows_lf_changes_only_when_the_dataset_asks(dataset, owner, queued_not_run):
    queued_not_run()
    cat = dataset.classes.get(name="cat")
    assert pipeline.after_lfs_changed(dataset=dataset, label_class=cat, user=owner) is None
    dataset_update(dataset=dataset, auto_train=True)
    job = pipeline.after_lfs_changed(dataset=dataset, label_class=cat, user=owner)
    assert job.kind == "auto_train" and job.params == {"label_class": cat.id}


def test_metadata_refreshes_carry_their_samples_and_coalesce_only_while_queued(dataset, owner, queued_not_run):
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=0.5)
    queued_not_run()
    first = pipeline.after_samples_changed(dataset=dataset, user=owner, sample_ids=[7])
    assert pipeline.after_samples_changed(dataset=dataset, user=owner, sample_ids=[3, 7]).id == first.id
    first.refresh_from_db()
    assert first.params == {"sample_ids": [3, 7]}  # the union, run by the one queued job
    # Once it runs it may have read those samples already: a later edit gets a job of its own.
    job_claim(job_id=first.id)
    second = pipeline.after_samples_changed(dataset=dataset, user=owner, sample_ids=[5])
    assert second.id != first.id and second.params == {"sample_ids": [5]}
    # A refresh of every sample absorbs the queued one's samples.
    assert pipeline.after_embeddings(dataset=dataset, user=owner).id == second.id
    second.refresh_from_db()
    assert second.params == {"sample_ids": None}
    assert pipeline.after_samples_changed(dataset=dataset, user=owner, sample_ids=[9]).params == {"sample_ids": None}
