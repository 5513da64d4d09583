"""Jobs API (list, detail, cancel, visibility) and the image / thumbnail endpoints."""

import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from imagestudio.datasets.models import Role, Sample
from imagestudio.jobs.models import Job, JobStatus
from tests.conftest import client_for, png_bytes


def import_one(client, dataset, name="a.png", data=None):
    data = data or png_bytes((10, 120, 30), size=(640, 320))
    response = client.post(f"/api/datasets/{dataset.id}/imports/",
                           {"files": [SimpleUploadedFile(name, data, content_type="image/png")]}, format="multipart")
    assert response.status_code == 202
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_image_and_thumbnail_bytes_types_and_caching(api, dataset):
    original = png_bytes((10, 120, 30), size=(640, 320))
    import_one(api, dataset, data=original)
    sample = Sample.objects.get()
    base = f"/api/datasets/{dataset.id}/samples/{sample.id}"
    image = api.get(f"{base}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == original
    assert image["ETag"] == f'"{sample.sha256}"' and "immutable" in image["Cache-Control"]
    thumb = api.get(f"{base}/thumbnail/")
    assert thumb["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size == (256, 128)
    again = api.get(f"{base}/thumbnail/", HTTP_IF_NONE_MATCH=thumb["ETag"])
    assert again.status_code == 304
    assert client_for(None).get(f"{base}/image/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_jobs_list_detail_and_visibility(api, dataset, stranger, member_client):
    job = import_one(api, dataset)
    listed = api.get("/api/jobs/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == job["id"]
    assert "staging" not in listed["results"][0]["params"]
    assert api.get(f"/api/jobs/?dataset={dataset.id}&status=succeeded&kind=import").json()["count"] == 1
    assert api.get("/api/jobs/?status=failed").json()["count"] == 0
    viewer = member_client(Role.VIEWER)
    assert viewer.get(f"/api/jobs/{job['id']}/").status_code == 200
    other = client_for(stranger)
    assert other.get(f"/api/jobs/{job['id']}/").status_code == 404
    assert other.get("/api/jobs/").json()["count"] == 0
    assert api.get(f"/api/jobs/{uuid.uuid4()}/").status_code == 404
    assert api.get("/api/jobs/not-a-uuid/").status_code == 404


@pytest.mark.django_db
def test_cancel_queued_job_and_refuse_finished(api, owner, dataset, member_client):
    queued = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    viewer = member_client(Role.VIEWER)
    assert viewer.post(f"/api/jobs/{queued.id}/cancel/").status_code == 403
    response = api.post(f"/api/jobs/{queued.id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"/api/jobs/{queued.id}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "job_finished"


@pytest.mark.django_db
def test_cancelled_job_is_not_run_by_a_late_delivery(owner, dataset):
    from imagestudio.jobs.services import run_job

    job = Job.objects.create(kind="import", dataset=dataset, creator=owner, status=JobStatus.CANCELLED)
    ran = []
    run_job(job.id, lambda j: ran.append(j) or {})
    assert ran == [] and Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_cancel_during_run_stops_at_next_progress(owner, dataset):
    from imagestudio.jobs.services import job_cancel, job_progress, run_job

    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    progressed = []

    def work(running):
        job_progress(job_id=running.id, progress=0.5)
        progressed.append(0.5)
        job_cancel(job=running)
        job_progress(job_id=running.id, progress=0.9)
        progressed.append(0.9)
        return {}

    run_job(job.id, work)
    job.refresh_from_db()
    assert progressed == [0.5] and job.status == JobStatus.CANCELLED and job.progress == 0.5


@pytest.mark.django_db
def test_failing_work_records_error(owner, dataset):
    from imagestudio.jobs.services import run_job

    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    run_job(job.id, lambda j: 1 / 0)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "ZeroDivisionError" in job.error and job.finished_at


@pytest.fixture
def broker_down(monkeypatch):
    from imagestudio.celery import app

    app.conf.task_always_eager = False
    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")  # Celery reads this before its conf
    yield
    app.conf.broker_url = previous
    app.conf.task_always_eager = True


@pytest.mark.django_db
def test_unreachable_broker_is_503_and_nothing_staged(api, dataset, settings, broker_down):
    response = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"files": [SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")]},
                        format="multipart")
    assert response.status_code == 503 and response.json()["code"] == "broker_unavailable"
    assert response["Retry-After"]
    assert Job.objects.count() == 0
    assert not (settings.MEDIA_ROOT / "staging").exists()


@pytest.mark.django_db
def test_an_export_the_broker_cannot_take_leaves_no_export_behind(api, dataset, broker_down):
    """A 503, and then exports/ listed one forever, not ready, with no job."""
    from imagestudio.exports.models import Export

    response = api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "dataset"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "broker_unavailable"
    assert not Export.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db(transaction=True)  # the export jobs run when their request commits
def test_an_export_download_url_opens_that_csv_without_a_token_for_its_user_only(api, owner, dataset, member_client):
    """A page on another origin could not hand `download_url` to <a download> (no token: 401) and had to hold the
    whole CSV in memory. The URL's signed `access` opens that export's CSV, as its user, and nothing else."""
    from urllib.parse import parse_qs, urlsplit

    from imagestudio.datasets.services import membership_remove
    from tests.factories import make_samples

    make_samples(dataset, [{"split": "train"}, {"split": "dev"}])
    viewer = member_client(Role.VIEWER)
    jobs = [api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "dataset"}, format="json").json()["id"]
            for _ in range(2)]
    exports = [api.get(f"/api/jobs/{job}/").json()["params"]["export"] for job in jobs]
    first = viewer.get(f"/api/datasets/{dataset.id}/exports/{exports[0]}/").json()
    url = urlsplit(first["download_url"])
    anonymous = client_for(None)
    download = anonymous.get(f"{url.path}?{url.query}")
    assert download.status_code == 200 and b"".join(download.streaming_content).count(b"\n") == 3
    token = parse_qs(url.query)["access"][0]
    other = f"/api/datasets/{dataset.id}/exports/{exports[1]}/download/"
    assert anonymous.get(f"{other}?access={token}").status_code == 401  # another export
    assert anonymous.get(f"/api/datasets/{dataset.id}/exports/{exports[0]}/?access={token}").status_code == 401
    assert anonymous.get(f"{url.path}?access={token[:-3]}abc").status_code == 401  # tampered
    job = api.get("/api/jobs/?limit=1").json()["results"][0]
    job_token = parse_qs(urlsplit(job["events_url"]).query)["access"][0]
    assert anonymous.get(f"{url.path}?access={job_token}").status_code == 401  # a job's token opens no export
    assert viewer.post("/api/auth/logout/").status_code == 204  # the links issued under the viewer's token die with it
    signed_out = anonymous.get(f"{url.path}?{url.query}")
    assert signed_out.status_code == 401 and "sign-in this URL was issued under has ended" in signed_out.json()["detail"]
    again = member_client(Role.ANNOTATOR)  # a member with a live token
    url = urlsplit(again.get(f"/api/datasets/{dataset.id}/exports/{exports[0]}/").json()["download_url"])
    assert anonymous.get(f"{url.path}?{url.query}").status_code == 200
    membership_remove(membership=dataset.memberships.get(role=Role.ANNOTATOR))
    assert anonymous.get(f"{url.path}?{url.query}").status_code == 404  # its user no longer sees the dataset
