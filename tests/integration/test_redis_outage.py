"""Redis stopped: async endpoints answer 503 with a clear message, everything else keeps working, and work
queued before the outage runs once Redis is back (a private Redis with an append-only file, so the
machine's own Redis is never touched)."""

import subprocess
import time

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.celery import app as celery_app
from imagestudio.datasets.models import Sample
from tests.conftest import free_port, png_bytes
from tests.integration.conftest import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    def __init__(self, directory):
        self.port, self.directory, self.process = free_port(), directory, None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("the private Redis did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def use_broker(url):
    """Point this process's producers at another broker (Celery reads the variable before its conf)."""
    import os

    os.environ["CELERY_BROKER_URL"] = url
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def private_redis(integration_services, tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    previous = celery_app.conf.broker_url
    use_broker(server.url)
    yield server
    server.stop()
    use_broker(previous)


def upload(client, dataset, name, colour):
    return client.post(f"/api/datasets/{dataset.id}/imports/",
                       {"files": [SimpleUploadedFile(name, png_bytes(colour), content_type="image/png")]},
                       format="multipart")


def test_outage_gives_503_keeps_reads_and_runs_queued_work_after(api, dataset, real_tasks, private_redis,
                                                                  start_worker):
    queued = upload(api, dataset, "before.png", (1, 2, 3))
    assert queued.status_code == 202 and queued.json()["status"] == "queued"

    private_redis.stop()
    refused = upload(api, dataset, "during.png", (4, 5, 6))
    assert refused.status_code == 503 and refused.json()["code"] == "broker_unavailable"
    assert "Redis" in refused.json()["detail"] and refused["Retry-After"]
    embed = api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json")
    assert embed.status_code in (400, 503)  # no images yet is checked first, or the broker refusal
    assert api.get("/api/datasets/").status_code == 200
    assert api.get(queued["Location"]).json()["status"] == "queued"
    assert api.get(f"/api/datasets/{dataset.id}/samples/").status_code == 200

    private_redis.start()  # the append-only file brings the queued message back
    start_worker(env={"CELERY_BROKER_URL": private_redis.url})
    job = wait_for_job(api, queued["Location"])
    assert job["status"] == "succeeded", job
    assert list(Sample.objects.values_list("external_id", flat=True)) == ["before.png"]
    again = upload(api, dataset, "after.png", (7, 8, 9))
    assert again.status_code == 202
    assert wait_for_job(api, again["Location"])["status"] == "succeeded"
