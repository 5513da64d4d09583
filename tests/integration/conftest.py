"""Real processes: a Celery worker on Redis against the Postgres test database.

These tests need DATABASE_URL (Postgres) and CELERY_BROKER_URL (Redis) in the environment, as
tests/run.sh sets them. Elsewhere they skip, unless IMAGESTUDIO_REQUIRE_INTEGRATION=1 turns the skip
into a failure (tests/run.sh sets that too, so CI cannot pass without them).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from imagestudio.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def _missing_services():
    if connection.vendor != "postgresql":
        return "DATABASE_URL does not point at Postgres"
    if not celery_app.conf.broker_url.startswith("redis://"):
        return "CELERY_BROKER_URL does not point at Redis"
    import redis

    try:
        redis.Redis.from_url(celery_app.conf.broker_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis is unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def integration_services(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        reason = _missing_services()
    if reason:
        if os.environ.get("IMAGESTUDIO_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"integration tests are required but {reason}")
        pytest.skip(reason)
    import redis

    redis.Redis.from_url(celery_app.conf.broker_url).flushdb()  # a dedicated db number, see tests/run.sh


def _database_url():
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """A `celery worker` subprocess sharing the test database and media directory."""

    def __init__(self, media_root, log_path, queues="default,embeddings,training", env=None, concurrency=1):
        self.log_path = log_path
        env = {**os.environ, "DATABASE_URL": _database_url(), "MEDIA_ROOT": str(media_root),
               "CELERY_BROKER_URL": celery_app.conf.broker_url, "CELERY_TASK_ALWAYS_EAGER": "0",
               "PYTHONPATH": str(ROOT), **(env or {})}
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "imagestudio", "worker", "-Q", queues, "-c", str(concurrency),
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"test-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.output()}")
            if " ready." in self.output():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not become ready: {self.output()}")

    def output(self):
        return Path(self.log_path).read_text(errors="replace")

    def kill(self):
        """SIGKILL the whole process group (the main process and its pool children), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def real_tasks(integration_services):
    """Send tasks to Redis instead of running them in-process."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def start_worker(real_tasks, settings, tmp_path):
    workers = []

    def start(**kwargs):
        worker = Worker(settings.MEDIA_ROOT, tmp_path / f"worker-{len(workers)}.log", **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for_job(client, location, statuses=("succeeded", "failed", "cancelled"), timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job did not reach {statuses} in {timeout}s: {job}")
