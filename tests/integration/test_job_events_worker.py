"""A real Celery worker runs an import while a client without a token follows it on the job's events URL."""

import json
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import client_for, png_bytes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_events_follow_a_worker_import_to_its_result(api, dataset, start_worker, settings):
    settings.JOB_EVENTS_POLL_SECONDS = 0.05
    settings.JOB_EVENTS_MAX_SECONDS = 120  # the bound if the worker never finished
    worker = start_worker()
    files = [SimpleUploadedFile(f"{i}.png", png_bytes((i * 30, 0, 255 - i * 30)), content_type="image/png")
             for i in range(8)]
    response = api.post(f"/api/datasets/{dataset.id}/imports/", {"files": files}, format="multipart")
    assert response.status_code == 202
    url = urlsplit(response.json()["events_url"])
    stream = client_for(None).get(f"{url.path}?{url.query}")
    assert stream.status_code == 200 and stream["Content-Type"] == "text/event-stream"
    events = []
    for chunk in stream.streaming_content:
        fields = dict(line.split(": ", 1) for line in chunk.decode().strip().split("\n") if not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    *progress, (last, job) = events
    assert last == "done" and job["status"] == "succeeded" and job["result"]["created"] == 8, (events, worker.output())
    assert {data["status"] for _, data in progress} <= {"queued", "running"}
    values = [data["progress"] for _, data in progress]
    assert values == sorted(values)
