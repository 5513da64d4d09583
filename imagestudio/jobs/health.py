"""Is the service able to work: the database answers, the task queue answers, and (when asked) a worker does."""

from django.db import connection

from imagestudio.common.errors import ServiceUnavailable

from .services import queue_check

WORKER_PING_SECONDS = 1.0


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure to reach it is the answer
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def _broker() -> str:
    try:
        queue_check()
    except ServiceUnavailable:
        return "unavailable"
    return "ok"


def _workers() -> int | None:
    """Workers answering a ping; None where tasks run in-process (no broker)."""
    from imagestudio.celery import app

    if app.conf.task_always_eager:
        return None
    try:
        return len(app.control.ping(timeout=WORKER_PING_SECONDS) or [])
    except Exception:  # the broker went away between the checks
        return 0


def service_health(*, with_workers: bool = False) -> tuple[bool, dict]:
    """(healthy, report). Healthy: database and broker answer, and at least one worker when `with_workers`."""
    report = {"database": _database(), "broker": _broker()}
    healthy = report["database"] == "ok" and report["broker"] == "ok"
    if with_workers:
        report["workers"] = _workers()
        healthy = healthy and report["workers"] != 0
    return healthy, report
