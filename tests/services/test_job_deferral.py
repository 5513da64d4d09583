"""A job waits for the jobs writing its inputs that were asked for before it, while they are queued or running,
for JOB_INPUT_WAIT_SECONDS at most; a deferred delivery goes back to the queue uncounted and is sent again later.
(tests/integration/test_training_waits_for_votes.py runs the whole wait on real workers.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from imagestudio.celery import app as celery_app
from imagestudio.jobs.models import Job, JobStatus
from imagestudio.jobs.services import JobDeferred, job_wait_for, run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_workers():
    """Tasks go to a broker, as in production (job_wait_for only reads the flag)."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


def job_at(dataset, kind, seconds_ago, status=JobStatus.QUEUED):
    job = Job.objects.create(kind=kind, dataset=dataset, status=status, task_name=f"workers.tasks.{kind}")
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=seconds_ago))
    return Job.objects.get(pk=job.pk)


def writers_of(dataset):
    return Job.objects.filter(dataset=dataset, kind="lf_votes")


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_a_job_waits_for_an_active_writer_asked_for_before_it(dataset, on_workers, status):
    writer = job_at(dataset, "lf_votes", 10, status)
    reader = job_at(dataset, "training_set", 5, JobStatus.RUNNING)
    with pytest.raises(JobDeferred, match=str(writer.id)):
        job_wait_for(job=reader, writers=writers_of(dataset), what="the votes")


@pytest.mark.parametrize(("writer_age", "writer_status", "reader_age"), [
    (2, JobStatus.QUEUED, 5),  # asked for after the reader: the reader was asked for on the inputs before it
    (10, JobStatus.SUCCEEDED, 5),
    (10, JobStatus.FAILED, 5),
    (10, JobStatus.CANCELLED, 5),
    (700, JobStatus.RUNNING, 601),  # the reader waited JOB_INPUT_WAIT_SECONDS already: it runs on what it finds
])
def test_a_job_does_not_wait_for_other_writers(dataset, on_workers, settings, writer_age, writer_status, reader_age):
    settings.JOB_INPUT_WAIT_SECONDS = 600
    job_at(dataset, "lf_votes", writer_age, writer_status)
    reader = job_at(dataset, "training_set", reader_age, JobStatus.RUNNING)
    job_wait_for(job=reader, writers=writers_of(dataset), what="the votes")


def test_a_job_of_another_dataset_or_kind_is_no_writer(dataset, owner, on_workers):
    from imagestudio.datasets.services import dataset_create

    job_at(dataset_create(user=owner, name="Other", classes=["x"]), "lf_votes", 10)
    job_at(dataset, "embeddings", 10)
    job_wait_for(job=job_at(dataset, "training_set", 5, JobStatus.RUNNING), writers=writers_of(dataset),
                 what="the votes")


def test_in_process_tasks_never_wait(dataset):
    """Each ran to its end when it was asked for; a job that waited would wait on itself."""
    job_at(dataset, "lf_votes", 10, JobStatus.RUNNING)
    job_wait_for(job=job_at(dataset, "training_set", 5, JobStatus.RUNNING), writers=writers_of(dataset),
                 what="the votes")


def test_a_deferred_delivery_goes_back_to_the_queue_uncounted_and_is_sent_again(dataset, monkeypatch):
    sent, finished = [], []
    monkeypatch.setattr("imagestudio.jobs.services._send",
                        lambda task_name, job_id, countdown=None: sent.append((task_name, str(job_id), countdown)))
    job = job_at(dataset, "training_set", 1)

    def work(running):
        raise JobDeferred("waiting for the votes (job x) to finish", seconds=3)

    run_job(job.id, work, finished=finished.append)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.message) == (
        JobStatus.QUEUED, 0, "waiting for the votes (job x) to finish")
    assert job.started_at is not None and job.finished_at is None and job.heartbeat_at is None
    assert sent == [(job.task_name, str(job.id), 3)]
    assert finished == []  # nothing is finished: its inputs wait for the delivery that runs it

    run_job(job.id, lambda running: {"built": True})
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {"built": True})
