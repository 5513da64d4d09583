"""Job lifecycle. Services create a Job and enqueue its task by name on commit; workers move it along.

A worker first claims the job (queued, or running without a live runner -> running, counting attempts); a job
delivered again after its worker died is claimed again and resumes, because every task only does missing work
(see jobs.liveness for how a dead runner is told from a live one).
Cancelling is cooperative: the task checks `job_should_stop` between batches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Model, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from imagestudio.common.errors import Conflict, DomainError, ServiceUnavailable

from .liveness import claimable, database_now, heartbeats_enabled, job_heartbeat, orphaned
from .models import ACTIVE_STATUSES, Job, JobStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# (job id, attempts) of the delivery this task runs: a claim's fencing token. Writes of the job's state match it,
# so a runner that lost its job (frozen past JOB_ORPHAN_SECONDS, then delivered again) writes nothing and stops.
_delivery: ContextVar[tuple[str, int] | None] = ContextVar("job_delivery", default=None)


def _mine(job_id):
    """The filter that keeps a state write to this process's delivery of the job (none outside a task)."""
    delivery = _delivery.get()
    return {"attempts": delivery[1]} if delivery is not None and delivery[0] == str(job_id) else {}


class JobCancelled(Exception):
    """Raised inside a task when its job was cancelled; the task stops cleanly."""


class JobDeferred(Exception):
    """Raised inside a task (by `job_wait_for`) whose inputs another job is still writing: the job goes back to
    the queue and its task is delivered again `seconds` later."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


def _publish(task_name, job_id, countdown=None):
    """Send the job's task; a broker that refuses it raises, the job left as it is (a resend, a deferral: an earlier
    message may still be queued, and the reaper sends it again later)."""
    from imagestudio.celery import app

    app.send_task(task_name, args=[str(job_id)], countdown=countdown)


def _send(task_name, job_id, countdown=None):
    """A request's first enqueue: a broker that refuses it fails the queued job, which no message will ever run."""
    try:
        _publish(task_name, job_id, countdown)
    except KombuOperationalError as exc:
        logger.error("could not enqueue %s for job %s: %s", task_name, job_id, exc)
        now = timezone.now()
        Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED, error=f"the task queue is unreachable: {exc}", finished_at=now, updated_at=now
        )


def _run_eagerly(task_name, job_id):
    from imagestudio.celery import app

    if task_name not in app.tasks:
        app.loader.import_default_modules()  # task modules are discovered lazily, once
    app.tasks[task_name].apply(args=[str(job_id)])


def _dispatch(task_name, job_id, resend=False):
    """Run the task here (in-process tasks) or send it: a first enqueue by `_send`, a `resend` by `_publish`."""
    from imagestudio.celery import app

    if app.conf.task_always_eager:
        _run_eagerly(task_name, job_id)
    else:
        (_publish if resend else _send)(task_name, job_id)


def job_enqueue(*, kind: str, task_name: str, dataset: Model | None = None, creator: User | None = None,
                params: dict[str, Any] | None = None, dedupe_key: str = "",
                dedupe_statuses: Iterable[str] = ACTIVE_STATUSES, check_queue: bool = True,
                coalesce: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[Job, bool]:
    """Create a Job (or return the one with the same dedupe key in `dedupe_statuses`) and enqueue it on commit.
    `coalesce(params of that job)` gives its new params, written under its row lock: a queued job is claimed
    only after this transaction commits, so it runs with them. `check_queue=False` when the caller already
    pinged the broker for this request."""
    if check_queue:
        queue_check()
    with transaction.atomic():
        if dedupe_key:
            existing = (
                Job.objects.select_for_update()
                .filter(dataset=dataset, kind=kind, dedupe_key=dedupe_key, status__in=dedupe_statuses)
                .first()
            )
            if existing is not None:
                if coalesce is not None and (merged := coalesce(existing.params)) != existing.params:
                    existing.params = merged
                    existing.save(update_fields=["params"])
                return existing, False
        job = Job.objects.create(kind=kind, dataset=dataset, creator=creator, params=params or {},
                                 dedupe_key=dedupe_key, task_name=task_name)
        transaction.on_commit(lambda: _dispatch(task_name, job.id))
    return job, True


def queue_check() -> None:
    """Refuse async work early, with a clear error, when the broker cannot be reached."""
    from imagestudio.celery import app

    if app.conf.task_always_eager:
        return
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises several families of errors here
        raise ServiceUnavailable(
            "The task queue (Redis) is unreachable; async work cannot be accepted now. Retry later.",
            code="broker_unavailable",
        ) from exc


def job_claim(*, job_id: uuid.UUID | str) -> Job | None:
    """Mark the job running for this delivery. Returns the job, or None when it must not run (finished,
    cancelled, or running in a process that is alive)."""
    now = database_now()
    claimed = Job.objects.filter(claimable(now), pk=job_id).update(
        status=JobStatus.RUNNING, attempts=F("attempts") + 1, updated_at=now,
        heartbeat_at=now if heartbeats_enabled() else None,
    )
    if not claimed:
        return None
    Job.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return Job.objects.get(pk=job_id)


def job_should_stop(*, job_id: uuid.UUID | str) -> bool:
    return not Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, **_mine(job_id)).exists()


def job_progress(*, job_id: uuid.UUID | str, progress: float, message: str = "") -> None:
    """Record progress; raise JobCancelled when the job was cancelled meanwhile."""
    # Never backwards: a delivery after a worker died starts its count again, yet the work it finds done stays done.
    updated = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, **_mine(job_id)).update(
        progress=Greatest(F("progress"), Value(max(0.0, min(1.0, progress)))), message=message[:500],
        updated_at=timezone.now()
    )
    if not updated:
        raise JobCancelled(job_id)


def job_succeed(*, job_id: uuid.UUID | str, result: dict[str, Any], message: str = "done") -> None:
    now = timezone.now()
    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, **_mine(job_id)).update(
        status=JobStatus.SUCCEEDED,
        progress=1.0,
        result=result,
        message=message[:500],
        finished_at=now,
        updated_at=now,
    )


def job_record_result(*, job_id: uuid.UUID | str, result: dict[str, Any]) -> None:
    """The result of what a cancelled job did before it stopped (an import's samples stay). The cancel made the job
    final at once; this comes when its runner stops (after the batch it was writing), as a change a long poll with
    `?since=` sees."""
    Job.objects.filter(pk=job_id, status=JobStatus.CANCELLED, **_mine(job_id)).update(result=result,
                                                                                      updated_at=timezone.now())


def job_fail(*, job_id: uuid.UUID | str, error: str, result: dict[str, Any] | None = None) -> None:
    now = timezone.now()
    updates = {"status": JobStatus.FAILED, "error": str(error), "finished_at": now, "updated_at": now}
    if result is not None:
        updates["result"] = result
    Job.objects.filter(pk=job_id, status__in=ACTIVE_STATUSES, **_mine(job_id)).update(**updates)


def _tasks_in_process() -> bool:
    from imagestudio.celery import app

    return app.conf.task_always_eager


def job_writers_active(*, writers: QuerySet[Job]) -> bool:
    """Whether one of `writers` is queued or running in a worker (in-process tasks ran to their end when asked)."""
    return not _tasks_in_process() and writers.filter(status__in=ACTIVE_STATUSES).exists()


def job_wait_for(*, job: Job, writers: QuerySet[Job], what: str, asked_before: datetime | None = None) -> None:
    """Defer `job` (raise JobDeferred) while one of `writers`, jobs that write its inputs and were asked for before
    it (before `asked_before`, when the caller follows what those writers asked for as they ended), is queued or
    running; for JOB_INPUT_WAIT_SECONDS after the job was asked for at most, then it runs on what it finds. Where
    tasks run in-process there is nothing to wait for: each ran to its end when asked."""
    waited = (timezone.now() - job.created_at).total_seconds()
    if _tasks_in_process() or waited > settings.JOB_INPUT_WAIT_SECONDS:
        return
    writer = (writers.filter(created_at__lt=asked_before or job.created_at, status__in=ACTIVE_STATUSES)
              .order_by("created_at").first())
    if writer is not None:  # asked again sooner at first, then less often
        raise JobDeferred(f"waiting for {what} (job {writer.id}) to finish",
                          seconds=min(JOB_DEFER_MAX_SECONDS, settings.JOB_DEFER_SECONDS + waited / 10))


# The longest a deferred job waits for its next delivery; one queued longer past JOB_ORPHAN_SECONDS lost its message.
JOB_DEFER_MAX_SECONDS = 30


def _job_defer(job: Job, deferral: JobDeferred) -> None:
    """Back to the queue: the delivery is not counted (it did no work), and the task is sent again later. A message
    lost on the way (the worker died in between, the broker refused it) is sent again by jobs_requeue_orphaned."""
    if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, **_mine(job.pk)).update(
            status=JobStatus.QUEUED, attempts=F("attempts") - 1, heartbeat_at=None, message=str(deferral)[:500],
            updated_at=database_now()):
        try:
            _publish(job.task_name, job.pk, countdown=deferral.seconds)
        except Exception:  # the job waits for the reaper instead
            logger.exception("job %s: could not queue it again after its deferral", job.pk)


def job_cancel(*, job: Job) -> Job:
    """Cancel a queued or running job; a finished one cannot be cancelled."""
    now = timezone.now()
    updated = Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=now, updated_at=now, message="cancelled"
    )
    job.refresh_from_db()
    if not updated:
        raise Conflict(f"The job is already {job.status}; only queued or running jobs can be cancelled.",
                       code="job_finished")
    return job


def jobs_cancel_active(*, dataset: Model) -> int:
    """Cancel every queued or running job of a dataset (running ones stop at their next progress report)."""
    now = timezone.now()
    return Job.objects.filter(dataset=dataset, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=now, updated_at=now, message="cancelled: the dataset is being deleted")


def run_job(job_id: uuid.UUID | str, work: Callable[[Job], dict[str, Any]],
            finished: Callable[[Job], None] | None = None) -> None:
    """The common body of every task: claim, run `work(job)`, record success, failure or cancellation.

    `work` returns the result dict. Unexpected errors are recorded on the job and not re-raised, so
    the broker does not redeliver a job that failed for a reason a retry would not fix. `finished(job)` runs once
    the outcome is recorded, never before: a worker killed earlier leaves the job's inputs to its next delivery.
    Every write of the job's state is this delivery's only (`_delivery`): a runner that lost its job to another
    delivery stops at its next progress report and records nothing. A deferred job (`job_wait_for`) goes back to
    the queue, uncounted, and `finished` waits for the delivery that runs it.
    """
    job = job_claim(job_id=job_id)
    if job is None:
        logger.info("job %s is not runnable (finished, cancelled, unknown or running elsewhere); skipping", job_id)
        return
    delivery = _delivery.set((str(job.pk), job.attempts))
    try:
        with job_heartbeat(job_id, job.attempts):
            result = work(job)
    except JobCancelled:  # or taken over: this runner froze past JOB_ORPHAN_SECONDS and another delivery claimed it
        status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        logger.info("job %s %s", job_id, "cancelled" if status == JobStatus.CANCELLED else
                    "stopped: it was deleted with its dataset" if status is None else
                    "stopped: another delivery took it over (this runner was silent too long); it writes nothing")
    except JobDeferred as deferral:
        logger.info("job %s deferred: %s", job_id, deferral)
        _job_defer(job, deferral)
        return
    except Exception as exc:
        refused = isinstance(exc, DomainError) and not isinstance(exc, ServiceUnavailable)
        if refused:
            logger.info("job %s refused its input: %s", job_id, exc)  # a bad archive, no negatives: no traceback
        elif not Job.objects.filter(pk=job_id).exists():  # its dataset was deleted under it, the job with it
            logger.info("job %s stopped: it was deleted with its dataset (%s: %s)", job_id, type(exc).__name__, exc)
        else:
            logger.exception("job %s failed", job_id)
        # a refusal says what to change, as a 400 would; anything else names the exception too
        job_fail(job_id=job_id, error=str(exc) if refused else f"{type(exc).__name__}: {exc}")
    else:
        job_succeed(job_id=job_id, result=result)
    finally:
        _delivery.reset(delivery)
    if finished is not None and Job.objects.filter(pk=job.pk, attempts=job.attempts).exclude(
            status__in=ACTIVE_STATUSES).exists():
        finished(job)  # not where another delivery took the job over (this runner froze): its inputs are that one's


def _redelivery_reason(job: Job) -> str:
    if job.status == JobStatus.QUEUED and job.started_at is None:
        return f"sent again: no worker took it for {settings.JOB_QUEUED_RESEND_SECONDS} s (its message may be lost)"
    return "delivered again: the process running it stopped answering"


def jobs_requeue_orphaned(*, stale_after_seconds: float | None = None, include_queued: bool = False) -> dict[str, int]:
    """Deliver again each running job whose runner has not been heard from for `stale_after_seconds`
    (JOB_ORPHAN_SECONDS by default): its worker was killed or its machine lost. A job that has had
    JOB_MAX_ATTEMPTS deliveries, or has no task to run it (a command-line run), fails instead.
    `include_queued`: also dispatch queued jobs (where tasks run in-process, those a stopped server never ran).

    The job stays running with no heartbeat, which its new delivery may claim (as may the broker's late
    redelivery of the first message: one claim wins). A reaper that dies before sending leaves it to look orphaned
    again JOB_ORPHAN_SECONDS later, never queued without a message. A deferred job (back in the queue, waiting for
    its inputs) whose next message is long overdue is sent again too, and so is a queued job no worker has taken for
    JOB_QUEUED_RESEND_SECONDS (a lost message; a copy of one still queued finds the job taken)."""
    now = database_now()
    stale = orphaned(now, settings.JOB_ORPHAN_SECONDS if stale_after_seconds is None else stale_after_seconds)
    if include_queued:
        stale |= Q(status=JobStatus.QUEUED)
    else:  # deferred (it ran, and went back to the queue) and its next message long overdue; or never taken
        stale |= Q(status=JobStatus.QUEUED, started_at__isnull=False,
                   updated_at__lt=now - timedelta(seconds=settings.JOB_ORPHAN_SECONDS + JOB_DEFER_MAX_SECONDS))
        stale |= Q(status=JobStatus.QUEUED, started_at__isnull=True,
                   updated_at__lt=now - timedelta(seconds=settings.JOB_QUEUED_RESEND_SECONDS))
    counts = {"requeued": 0, "failed": 0}
    for job in Job.objects.filter(stale).only("id", "status", "task_name", "attempts", "heartbeat_at", "updated_at",
                                              "started_at"):
        # Each write is conditional on what was read, so a heartbeat, a claim or another reaper in between wins.
        unchanged = Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts,
                                       heartbeat_at=job.heartbeat_at, updated_at=job.updated_at)
        if job.attempts >= settings.JOB_MAX_ATTEMPTS or not job.task_name:
            why = (f"its worker stopped during each of its {job.attempts} deliveries" if job.task_name
                   else "the process running it stopped")
            counts["failed"] += unchanged.update(status=JobStatus.FAILED, error=f"Orphaned: {why}.",
                                                 finished_at=now, updated_at=now)
        elif unchanged.update(heartbeat_at=None, updated_at=now, message=_redelivery_reason(job)):
            logger.warning("job %s: its runner stopped; delivering it again", job.pk)
            try:
                _dispatch(job.task_name, job.pk, resend=True)
            except Exception:  # this job looks orphaned (or untaken) again later; the others go on
                logger.exception("job %s: could not deliver it again", job.pk)
                continue
            counts["requeued"] += 1
    return counts
