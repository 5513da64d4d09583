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
    monkeypatch.setattr("imagestudio.jobs.services._publish",
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


def test_the_wait_between_deliveries_grows_with_the_wait_so_far(dataset, on_workers, settings):
    settings.JOB_DEFER_SECONDS = 3
    job_at(dataset, "lf_votes", 700, JobStatus.RUNNING)
    waits = []
    for age in (5, 100, 500):
        with pytest.raises(JobDeferred) as deferral:
            job_wait_for(job=job_at(dataset, "training_set", age, JobStatus.RUNNING), writers=writers_of(dataset),
                         what="the votes")
        waits.append(deferral.value.seconds)
    assert waits == pytest.approx([3.5, 13.0, 30], abs=0.1)


def test_a_deferred_job_whose_next_message_was_lost_is_sent_again(dataset, monkeypatch, settings):
    """Its worker died between putting it back in the queue and sending the message (or the broker refused it)."""
    from imagestudio.jobs.services import JOB_DEFER_MAX_SECONDS, jobs_requeue_orphaned

    sent = []
    monkeypatch.setattr("imagestudio.jobs.services._dispatch", lambda task_name, job_id, **_: sent.append(job_id))
    overdue = settings.JOB_ORPHAN_SECONDS + JOB_DEFER_MAX_SECONDS
    lost = job_at(dataset, "training_set", overdue + 60)
    waiting = job_at(dataset, "training_set", overdue + 60)  # its message is due any moment
    never_ran = job_at(dataset, "training_set", overdue + 60)  # queued behind others: the broker holds its message
    now = timezone.now()
    Job.objects.filter(pk__in=[lost.pk, waiting.pk]).update(started_at=now - timedelta(seconds=overdue + 50))
    Job.objects.filter(pk=lost.pk).update(updated_at=now - timedelta(seconds=overdue + 5))
    Job.objects.filter(pk__in=[waiting.pk, never_ran.pk]).update(updated_at=now - timedelta(seconds=5))
    assert jobs_requeue_orphaned() == {"requeued": 1, "failed": 0} and sent == [lost.pk]
    assert Job.objects.get(pk=lost.pk).status == JobStatus.QUEUED


def test_a_runner_that_lost_its_job_to_a_deferred_delivery_does_not_finish_it(dataset, monkeypatch):
    """A runner frozen past JOB_ORPHAN_SECONDS, its job delivered again and deferred: the job's attempts are back
    to the frozen runner's, but the job is not finished, so the runner's `finished` (an import's clean-up) waits."""
    monkeypatch.setattr("imagestudio.jobs.services._publish", lambda *args, **kwargs: None)
    job, finished = job_at(dataset, "training_set", 1), []

    def frozen_then_delivered_again_and_deferred(running):
        claimed = Job.objects.filter(pk=running.pk)
        claimed.update(attempts=running.attempts + 1)  # the second delivery's claim
        claimed.update(status=JobStatus.QUEUED, attempts=running.attempts)  # and its deferral
        return {}

    run_job(job.id, frozen_then_delivered_again_and_deferred, finished=finished.append)
    assert finished == [] and Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_training_job_follows_what_its_writers_asked_for_as_they_ended(dataset, on_workers):
    """An import asked for before the set asks, as it ends, for a vote refresh and for vectors (auto-embed), whose
    end asks for another refresh: all after the set was asked for, all changing what it reads. The set waits for each
    in turn, and for nothing asked for after the last of them ended."""
    from imagestudio.training.services import _votes_settled

    def ended(job, seconds_ago, status=JobStatus.SUCCEEDED):
        Job.objects.filter(pk=job.pk).update(status=status, updated_at=timezone.now() - timedelta(seconds=seconds_ago))

    reader = job_at(dataset, "training_set", 100, JobStatus.RUNNING)
    importer = job_at(dataset, "import", 110, JobStatus.RUNNING)
    with pytest.raises(JobDeferred, match=str(importer.id)):
        _votes_settled(reader)
    refresh, vectors = job_at(dataset, "lf_votes", 80), job_at(dataset, "embeddings", 79)
    ended(importer, 70)
    with pytest.raises(JobDeferred, match=str(refresh.id)):
        _votes_settled(reader)
    ended(refresh, 60)
    with pytest.raises(JobDeferred, match=str(vectors.id)):
        _votes_settled(reader)
    refresh_of_vectors = job_at(dataset, "lf_votes", 50)
    ended(vectors, 40, JobStatus.CANCELLED)  # a cancelled job's refresh is asked for before its result is written
    with pytest.raises(JobDeferred, match=str(refresh_of_vectors.id)):
        _votes_settled(reader)
    ended(refresh_of_vectors, 30)
    job_at(dataset, "lf_votes", 20)  # an edit's refresh, asked for after every writer of the set's inputs ended
    _votes_settled(reader)
