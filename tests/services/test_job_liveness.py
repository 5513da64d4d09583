"""A job whose runner died is delivered again (or failed, with the reason); a job whose runner is alive is left
alone, and never claimed by a second delivery."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from imagestudio.jobs.models import Job, JobStatus
from imagestudio.jobs.services import job_claim, job_progress, jobs_requeue_orphaned, run_job
from imagestudio.pipeline import EMBED_TASK
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

ORPHAN_SECONDS = 60
QUEUED_RESEND_SECONDS = 90


@pytest.fixture(autouse=True)
def _orphan_seconds(settings):
    settings.JOB_ORPHAN_SECONDS, settings.JOB_MAX_ATTEMPTS = ORPHAN_SECONDS, 3
    settings.JOB_QUEUED_RESEND_SECONDS = QUEUED_RESEND_SECONDS


@pytest.fixture
def dispatched(monkeypatch):
    """The task names and job ids the reaper sends, instead of running them."""
    sent = []
    monkeypatch.setattr("imagestudio.jobs.services._dispatch", lambda task_name, job_id, **_: sent.append((task_name, job_id)))
    return sent


@pytest.fixture
def beating(monkeypatch, settings):
    """Heartbeats on, as in a worker (tasks run in-process here), every 50 ms."""
    monkeypatch.setattr("imagestudio.jobs.liveness.heartbeats_enabled", lambda: True)
    monkeypatch.setattr("imagestudio.jobs.services.heartbeats_enabled", lambda: True)
    settings.JOB_HEARTBEAT_SECONDS = 0.05


def job_left(dataset, *, status=JobStatus.RUNNING, heartbeat_age=None, updated_age=0, attempts=1, task_name=EMBED_TASK):
    """A job as a runner left it: its last heartbeat and last change `*_age` seconds ago (None: never written)."""
    now = timezone.now()
    job = Job.objects.create(kind="embeddings", dataset=dataset, status=status, attempts=attempts, task_name=task_name)
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=None if heartbeat_age is None else now - timedelta(seconds=heartbeat_age),
        updated_at=now - timedelta(seconds=updated_age))
    return Job.objects.get(pk=job.pk)


def test_a_running_job_whose_heartbeat_stopped_runs_again_and_finishes(dataset):
    make_samples(dataset, [{}, {}])
    job = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1)
    assert jobs_requeue_orphaned() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()  # tasks run in-process here: delivered again means run again
    assert (job.status, job.attempts, job.result["computed"]) == (JobStatus.SUCCEEDED, 2, 2), job.error


def test_a_job_with_a_live_runner_is_not_requeued_nor_claimed_by_a_second_delivery(dataset, dispatched):
    job = job_left(dataset, heartbeat_age=ORPHAN_SECONDS - 5, updated_age=3600)
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 0} and dispatched == []
    assert job_claim(job_id=job.pk) is None  # the broker's late redelivery of its message
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)


def test_a_job_orphaned_on_each_of_its_deliveries_fails_with_the_reason(dataset, dispatched):
    job = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1, attempts=3)
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 1} and dispatched == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped during each of its 3 deliveries" in job.error
    assert job.finished_at is not None


def test_a_queued_job_no_worker_took_is_sent_again_once_per_period(dataset, dispatched):
    """Its message lost (a broker restarted without its last writes), a queued job stayed queued forever, and asking
    for the same work again answered that job."""
    waiting = job_left(dataset, status=JobStatus.QUEUED, attempts=0, updated_age=QUEUED_RESEND_SECONDS - 5)
    lost = job_left(dataset, status=JobStatus.QUEUED, attempts=0, updated_age=QUEUED_RESEND_SECONDS + 5)
    assert jobs_requeue_orphaned() == {"requeued": 1, "failed": 0} and dispatched == [(EMBED_TASK, lost.pk)]
    lost.refresh_from_db()
    assert lost.status == JobStatus.QUEUED and "sent again" in lost.message
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 0}  # not again before another period
    assert Job.objects.get(pk=waiting.pk).message == ""


def test_a_resend_the_broker_refuses_leaves_the_job_queued(dataset, monkeypatch):
    """The real send, with the broker down for one beat tick (the Redis restart resends exist for): it failed every
    job due, whose first message, still queued, then found it failed."""
    from kombu.exceptions import OperationalError

    from imagestudio.celery import app

    def refused(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setattr(app, "send_task", refused)
    lost = job_left(dataset, status=JobStatus.QUEUED, attempts=0, updated_age=QUEUED_RESEND_SECONDS + 5)
    orphan = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1)
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 0}
    assert Job.objects.get(pk=lost.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=orphan.pk).status == JobStatus.RUNNING


def test_a_job_no_task_runs_fails_when_its_process_stops(dataset, dispatched):
    job = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1, task_name="")  # `manage.py embed_dataset`
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "the process running it stopped" in job.error


STATES = st.fixed_dictionaries({
    "status": st.sampled_from(JobStatus.values),
    "heartbeat_age": st.none() | st.integers(0, 2 * ORPHAN_SECONDS).filter(lambda age: age != ORPHAN_SECONDS),
    "updated_age": st.integers(0, 2 * ORPHAN_SECONDS).filter(lambda age: age not in (ORPHAN_SECONDS,
                                                                                     QUEUED_RESEND_SECONDS)),
    "attempts": st.integers(0, 4),
    "task_name": st.sampled_from(["", EMBED_TASK]),
})


def expected_outcome(state, include_queued):
    """The reaper's rule, written out: (status after, delivered again)."""
    silent_for = state["updated_age"] if state["heartbeat_age"] is None else state["heartbeat_age"]
    queued = state["status"] == JobStatus.QUEUED  # never started (job_left): a lost message when untaken too long
    stale = (state["status"] == JobStatus.RUNNING and silent_for > ORPHAN_SECONDS) or (
        queued and (include_queued or state["updated_age"] > QUEUED_RESEND_SECONDS))
    if not stale:
        return state["status"], False
    if state["attempts"] >= 3 or not state["task_name"]:
        return JobStatus.FAILED, False
    return state["status"], True  # still running (or queued), for the new delivery to claim


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.lists(STATES, min_size=1, max_size=6), include_queued=st.booleans())
def test_exactly_the_orphaned_jobs_are_requeued_or_failed(dataset, dispatched, states, include_queued):
    Job.objects.all().delete()
    dispatched.clear()
    jobs = [job_left(dataset, **state) for state in states]
    counts = jobs_requeue_orphaned(include_queued=include_queued)
    expected = [expected_outcome(state, include_queued) for state in states]
    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [status for status, _ in expected]
    assert sorted(dispatched) == sorted((EMBED_TASK, job.pk) for job, (_, again) in zip(jobs, expected, strict=True)
                                        if again)
    newly_failed = [after == JobStatus.FAILED and state["status"] != JobStatus.FAILED
                    for (after, _), state in zip(expected, states, strict=True)]
    assert counts == {"requeued": len(dispatched), "failed": sum(newly_failed)}
    assert jobs_requeue_orphaned(include_queued=include_queued)["requeued"] == sum(
        include_queued and s == JobStatus.QUEUED for s, again in expected if again)  # not again before its time


@pytest.mark.django_db(transaction=True)  # the heartbeat is written from another thread, on its own connection
def test_a_worker_writes_the_heartbeat_while_the_work_runs(dataset, beating):
    job = job_left(dataset, status=JobStatus.QUEUED)
    beats = []

    def work(claimed):
        for _ in range(6):
            time.sleep(0.1)
            beats.append(Job.objects.get(pk=claimed.pk).heartbeat_at)
        return {}

    run_job(job.pk, work)
    assert beats[0] is not None and len(set(beats)) >= 3, beats  # written at the claim, then again and again
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.heartbeat_at <= job.finished_at


def test_a_runner_that_lost_its_job_to_another_delivery_records_nothing_and_stops(dataset, caplog):
    """A worker frozen past the orphan time (a paused VM) wakes up after the reaper gave its job to another. Its log
    says so (it said "cancelled", of a job nobody cancelled)."""
    import logging

    job = job_left(dataset, status=JobStatus.QUEUED, attempts=0)
    finished, reports = [], []

    def work(claimed):
        job_progress(job_id=claimed.pk, progress=0.5, message="half")
        Job.objects.filter(pk=claimed.pk).update(status=JobStatus.QUEUED)  # the reaper, meanwhile
        job_claim(job_id=claimed.pk)  # ... and the next delivery, on another worker
        for step in range(3):
            reports.append(step)
            job_progress(job_id=claimed.pk, progress=0.6 + step / 10, message="more")
        return {"done": True}

    with caplog.at_level(logging.INFO, logger="imagestudio.jobs.services"):
        run_job(job.pk, work, finished=finished.append)
    job.refresh_from_db()
    assert reports == [0]  # stopped at its first report after losing the job
    [record] = [r for r in caplog.records if str(job.pk) in r.getMessage()]
    assert "another delivery took it over" in record.getMessage() and "cancelled" not in record.getMessage()
    assert (job.status, job.attempts, job.result, job.progress, job.message) == (JobStatus.RUNNING, 2, {}, 0.5, "half")
    assert finished == []  # its inputs (staged files) are the next delivery's now


def test_progress_never_goes_backwards(dataset):
    job = job_left(dataset, status=JobStatus.QUEUED)
    seen = []

    def work(claimed):
        for value in (0.4, 0.1, 0.7):
            job_progress(job_id=claimed.pk, progress=value, message=str(value))
            seen.append(Job.objects.get(pk=claimed.pk).progress)
        return {}

    run_job(job.pk, work)
    assert seen == [0.4, 0.4, 0.7]


def test_a_reaper_that_fails_to_send_leaves_the_job_to_be_delivered_again_later(dataset, monkeypatch, settings):
    job = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1)
    other = job_left(dataset, heartbeat_age=ORPHAN_SECONDS + 1)
    sent = []

    def flaky(task_name, job_id, **_):
        if job_id == job.pk:
            raise RuntimeError("the broker went away")
        sent.append(job_id)

    monkeypatch.setattr("imagestudio.jobs.services._dispatch", flaky)
    assert jobs_requeue_orphaned() == {"requeued": 1, "failed": 0} and sent == [other.pk]  # the others go on
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.heartbeat_at is None  # claimable, never queued without a message
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=ORPHAN_SECONDS + 1))
    monkeypatch.setattr("imagestudio.jobs.services._dispatch", lambda task_name, job_id, **_: sent.append(job_id))
    assert jobs_requeue_orphaned()["requeued"] == 1 and sent[-1] == job.pk  # the other's new delivery has its time


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_outlives_a_dropped_database_connection(dataset, beating):
    from django.db import connection

    job = job_left(dataset, status=JobStatus.QUEUED)
    after_drop = []

    def work(claimed):
        time.sleep(0.3)
        with connection.cursor() as cursor:  # the heartbeat thread's connection (every other one of this database)
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        dropped_at = timezone.now()
        time.sleep(0.6)
        after_drop.append(Job.objects.get(pk=claimed.pk).heartbeat_at > dropped_at)
        return {}

    run_job(job.pk, work)
    assert after_drop == [True]


@pytest.mark.parametrize("worker_skew, beat_skew", [(-300, 0), (0, 300)])
def test_heartbeats_are_judged_on_the_database_clock_not_the_hosts(dataset, dispatched, monkeypatch, worker_skew,
                                                                   beat_skew):
    """A worker host 5 minutes behind, or a beat host 5 minutes ahead, does not make a live job look orphaned."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the embedded SQLite file has one host, whose clock it is")
    real_now = timezone.now
    monkeypatch.setattr("imagestudio.jobs.services.heartbeats_enabled", lambda: True)

    def host_clock(skew):
        monkeypatch.setattr("django.utils.timezone.now", lambda: real_now() + timedelta(seconds=skew))

    job = job_left(dataset, status=JobStatus.QUEUED)
    host_clock(worker_skew)
    assert job_claim(job_id=job.pk) is not None  # its heartbeat is written now
    host_clock(beat_skew)
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 0} and dispatched == []
    assert job_claim(job_id=job.pk) is None
