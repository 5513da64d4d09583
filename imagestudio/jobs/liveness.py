"""Whether the process running a job is alive: it writes a heartbeat, and a running job whose heartbeat stopped is
orphaned.

A worker killed with SIGKILL (or its machine lost) acknowledges nothing, and Redis gives its message back only after
the visibility timeout (an hour by default). The periodic `jobs_requeue_orphaned` delivers such a job again once
its heartbeat is JOB_ORPHAN_SECONDS old. A claim takes a running job only when it is orphaned, so the late
redelivery of the first message never runs a job twice at once. Where tasks run in-process (the embedded default)
no other process watches: no heartbeat is written, and `quickstart` delivers again what a stopped server left.
Heartbeats are written and judged on the database's clock (`database_now`), so the clocks of the worker and beat
hosts may differ.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from .models import Job, JobStatus

logger = logging.getLogger(__name__)


def heartbeats_enabled() -> bool:
    from imagestudio.celery import app

    return not app.conf.task_always_eager


def database_now() -> datetime:
    """Postgres's clock, the one every host shares; the embedded SQLite file lives on this host, whose clock it is."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def claimable(now: datetime) -> Q:
    """Jobs a delivery may run: queued, or running without a live runner."""
    cutoff = now - timedelta(seconds=settings.JOB_ORPHAN_SECONDS)
    return Q(status=JobStatus.QUEUED) | (
        Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff)))


def orphaned(now: datetime, stale_after_seconds: float) -> Q:
    """Running jobs whose runner has not been heard from for `stale_after_seconds` (by heartbeat, or by any
    change where it never wrote one)."""
    cutoff = now - timedelta(seconds=stale_after_seconds)
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff))


def _beat(job_id: uuid.UUID | str, attempts: int | None, stop: threading.Event) -> None:
    mine = {} if attempts is None else {"attempts": attempts}  # another delivery's job is not ours to keep alive
    try:
        while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
            try:
                Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, **mine).update(heartbeat_at=database_now())
            except DatabaseError as exc:  # the next beat retries; a long outage makes the job look orphaned
                logger.warning("job %s: heartbeat not written: %s", job_id, exc)
                connection.close()  # a dropped connection: the next beat opens a new one
    finally:
        connection.close()  # this thread's own connection


@contextlib.contextmanager
def job_heartbeat(job_id: uuid.UUID | str, attempts: int | None = None) -> Iterator[None]:
    """Write the job's heartbeat from a background thread while the block runs (for its delivery `attempts`)."""
    if not heartbeats_enabled():
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_beat, args=(job_id, attempts, stop), name=f"job-heartbeat-{job_id}",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
