"""A real Celery worker process on Redis runs an import job started through the HTTP API."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.datasets.models import Sample
from tests.conftest import png_bytes, zip_bytes
from tests.integration.conftest import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_runs_archive_import(api, dataset, start_worker, settings):
    worker = start_worker()
    archive = zip_bytes({f"img/{i}.png": png_bytes((i * 20, 0, 255 - i * 20)) for i in range(6)}
                        | {"manifest.csv": b"file,split,gt:cat\nimg/0.png,dev,PRESENT\nimg/1.png,,ABSENT\n"
                                           b"img/2.png,,\nimg/3.png,,\nimg/4.png,,\nimg/5.png,,\n"})
    response = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"archive": SimpleUploadedFile("a.zip", archive, content_type="application/zip")},
                        format="multipart")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    job = wait_for_job(api, response["Location"])
    assert job["status"] == "succeeded", (job, worker.output())
    assert job["result"]["created"] == 6 and job["result"]["annotations"] == 2
    assert job["attempts"] == 1 and job["progress"] == 1.0
    assert Sample.objects.filter(dataset=dataset).count() == 6
    thumbnails = list((settings.MEDIA_ROOT / "datasets" / str(dataset.id) / "thumbnails").rglob("*.jpg"))
    assert len(thumbnails) == 6
    assert "run_import" in worker.output()


def test_queued_job_waits_for_a_worker_and_runs_once_one_starts(api, dataset, start_worker):
    response = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"files": [SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")]},
                        format="multipart")
    assert api.get(response["Location"]).json()["status"] == "queued"
    start_worker()
    assert wait_for_job(api, response["Location"])["status"] == "succeeded"
