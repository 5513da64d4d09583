"""Job progress pushed: the Server-Sent Events stream (with its signed `access` for an EventSource) and the long
poll. The job moves through the same services a worker calls (claim, progress, succeed), between reads of the
stream or from another thread, so no assertion depends on timing."""

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connections

from imagestudio.datasets.models import Role
from imagestudio.datasets.services import membership_remove, membership_set
from imagestudio.jobs.access import job_access_token, job_access_user
from imagestudio.jobs.models import Job
from imagestudio.jobs.services import job_cancel, job_claim, job_fail, job_progress, job_succeed
from tests.conformance import component_problems
from tests.conftest import client_for, make_user, png_bytes

FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(autouse=True)
def _quick_polls(settings):
    settings.JOB_EVENTS_POLL_SECONDS = 0.01
    settings.JOB_EVENTS_HEARTBEAT_SECONDS = 3600
    settings.JOB_EVENTS_MAX_SECONDS = 3600


@pytest.fixture
def job(db, owner, dataset):
    return Job.objects.create(kind="import", dataset=dataset, creator=owner)


def parse(chunk):
    """One SSE message as a dict of its fields (a comment is {"comment": text}); data decoded from JSON."""
    text = chunk.decode() if isinstance(chunk, bytes) else chunk
    assert text.endswith("\n\n"), text
    fields = {}
    for line in text[:-2].split("\n"):
        name, _, value = line.partition(": ")
        fields[name or "comment"] = json.loads(value) if name == "data" else value
    if "data" in fields:  # every event's data is the component the schema names for it
        assert component_problems({"progress": "JobProgressEvent", "done": "Job"}[fields["event"]], fields["data"]) == []
    return fields


def open_stream(client, job, **headers):
    response = client.get(f"/api/jobs/{job.id}/events/", **headers)
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response["Content-Type"] == "text/event-stream" and response["Cache-Control"] == "no-cache"
    messages = (parse(chunk) for chunk in response.streaming_content)
    assert next(messages) == {"retry": "2000"}
    return messages


def events_url(client, job):
    """The job's events_url as a path with its query (the test client's host is testserver)."""
    url = urlsplit(client.get(f"/api/jobs/{job.id}/").json()["events_url"])
    assert url.netloc == "testserver"
    return f"{url.path}?{url.query}"


@pytest.mark.django_db
def test_stream_sends_each_state_then_the_final_job_and_ends(api, job):
    messages = open_stream(api, job)
    first = next(messages)
    assert first["event"] == "progress" and first["data"] == {"status": "queued", "progress": 0.0, "message": ""}
    assert first["id"] == api.get(f"/api/jobs/{job.id}/").json()["updated_at"]
    job_claim(job_id=job.id)
    assert next(messages)["data"] == {"status": "running", "progress": 0.0, "message": ""}
    job_progress(job_id=job.id, progress=0.5, message="halfway")
    halfway = next(messages)
    assert halfway["data"] == {"status": "running", "progress": 0.5, "message": "halfway"}
    job_succeed(job_id=job.id, result={"created": 3})
    done = next(messages)
    assert done["event"] == "done" and done["id"] != halfway["id"]
    assert done["data"] == api.get(f"/api/jobs/{job.id}/").json() | {"events_url": done["data"]["events_url"]}
    assert done["data"]["status"] == "succeeded" and done["data"]["result"] == {"created": 3}
    assert list(messages) == []


@pytest.mark.django_db
@pytest.mark.parametrize("finish", [lambda job: job_fail(job_id=job.id, error="boom"),
                                    lambda job: job_cancel(job=job)])
def test_failed_and_cancelled_jobs_end_the_stream_too(api, job, finish):
    messages = open_stream(api, job)
    assert next(messages)["event"] == "progress"
    finish(job)
    done = next(messages)
    assert done["event"] == "done" and done["data"]["status"] in ("failed", "cancelled")
    assert list(messages) == []


@pytest.mark.django_db
def test_a_stream_ends_after_its_duration_and_a_reconnection_resumes_from_last_event_id(api, job, settings):
    settings.JOB_EVENTS_MAX_SECONDS = 0
    seen = list(open_stream(api, job))
    assert [m["event"] for m in seen] == ["progress"]
    assert list(open_stream(api, job, HTTP_LAST_EVENT_ID=seen[0]["id"])) == []  # nothing new: not sent again
    job_claim(job_id=job.id)
    resumed = list(open_stream(api, job, HTTP_LAST_EVENT_ID=seen[0]["id"]))
    assert [m["data"]["status"] for m in resumed] == ["running"]
    assert [m["event"] for m in open_stream(api, job, HTTP_LAST_EVENT_ID="not a date")] == ["progress"]


@pytest.mark.django_db
def test_a_finished_job_sends_done_once_then_answers_204_to_its_last_event_id(api, job):
    job_claim(job_id=job.id)
    job_succeed(job_id=job.id, result={})
    (done,) = list(open_stream(api, job))
    assert done["event"] == "done"
    again = api.get(f"/api/jobs/{job.id}/events/", HTTP_LAST_EVENT_ID=done["id"])
    assert again.status_code == 204  # an EventSource stops reconnecting


@pytest.mark.django_db
def test_heartbeat_comments_while_nothing_changes(api, job, settings):
    settings.JOB_EVENTS_HEARTBEAT_SECONDS = 0
    chunks = iter(api.get(f"/api/jobs/{job.id}/events/").streaming_content)
    assert next(chunks).startswith(b"retry: ") and next(chunks).startswith(b"id: ")
    assert next(chunks) == next(chunks) == b": heartbeat\n\n"
    job_claim(job_id=job.id)
    assert parse(next(chunks))["data"]["status"] == "running"


@pytest.mark.django_db
def test_events_url_opens_the_stream_without_a_token_for_that_job_only(api, owner, dataset, job):
    anonymous = client_for(None)
    url = events_url(api, job)
    response = anonymous.get(url)
    assert response.status_code == 200
    first = next(chunk for chunk in response.streaming_content if chunk.startswith(b"id: "))
    assert parse(first)["data"]["status"] == "queued"
    other = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    query = url.split("?", 1)[1]
    assert anonymous.get(f"/api/jobs/{other.id}/events/?{query}").status_code == 401  # another job
    assert anonymous.get(f"/api/jobs/{job.id}/?{query}").status_code == 401  # only the stream takes it
    assert anonymous.get(url[:-3] + "abc").status_code == 401  # tampered
    assert anonymous.get(f"/api/jobs/{job.id}/events/").status_code == 401


@pytest.mark.django_db
def test_access_expires_and_follows_the_user(api, owner, dataset, job, settings):
    anonymous = client_for(None)
    viewer = make_user("vera")
    membership = membership_set(dataset=dataset, user=viewer, role=Role.VIEWER)[0]
    url = events_url(client_for(viewer), job)
    assert anonymous.get(url).status_code == 200
    token = parse_qs(urlsplit(url).query)["access"][0]
    lifetime = settings.JOB_EVENTS_ACCESS_SECONDS
    assert job_access_user(token=token, job_id=job.id, now=time.time() + lifetime - 1) == viewer
    assert job_access_user(token=token, job_id=job.id, now=time.time() + lifetime * 1.25 + 1) is None  # expired
    bucket = 10_000 * max(lifetime // 4, 1)  # the same URL while its expiry bucket lasts
    assert job_access_token(job=job, user=viewer, now=bucket + 1) == job_access_token(job=job, user=viewer, now=bucket + 9)
    membership_remove(membership=membership)
    assert anonymous.get(url).status_code == 404  # no longer sees the job
    viewer.is_active = False
    viewer.save()
    assert anonymous.get(url).status_code == 401
    assert client_for(make_user("stranger")).get(f"/api/jobs/{job.id}/events/").status_code == 404


@pytest.mark.django_db
def test_long_poll_answers_at_once_when_the_job_moved_or_finished_and_refuses_bad_waits(api, job):
    url = f"/api/jobs/{job.id}/"
    seen = api.get(url).json()
    job_claim(job_id=job.id)
    moved = api.get(url, {"wait": 30, "since": seen["updated_at"]}).json()
    assert moved["status"] == "running" and moved["updated_at"] != seen["updated_at"]
    job_succeed(job_id=job.id, result={})
    finished = api.get(url, {"wait": 30}).json()  # nothing will change any more: no wait
    assert finished["status"] == "succeeded"
    assert api.get(url, {"wait": 30, "since": finished["updated_at"]}).json() == finished
    for bad in ({"wait": 31}, {"wait": -1}, {"wait": "soon"}, {"wait": 1, "since": "yesterday"}):
        response = api.get(url, bad)
        assert response.status_code == 400 and set(response.json()) <= {"wait", "since"}, bad


@pytest.mark.django_db
def test_long_poll_without_change_answers_the_same_job_when_the_wait_is_over(api, job):
    url = f"/api/jobs/{job.id}/"
    seen = api.get(url).json()
    answered = api.get(url, {"wait": 0.05, "since": seen["updated_at"]}).json()
    # events_url's signed access is dated: a second may have turned between the two answers
    assert {**answered, "events_url": None} == {**seen, "events_url": None}


def drive(job_id, steps):
    """A worker's life for the job, in another thread with its own connection."""
    def run():
        try:
            job_claim(job_id=job_id)
            for step in range(1, steps + 1):
                job_progress(job_id=job_id, progress=step / steps, message=f"step {step}")
            job_succeed(job_id=job_id, result={"created": steps})
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_stream_follows_a_job_progressing_in_another_thread(api, owner, dataset):
    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    messages = open_stream(api, job)
    assert next(messages)["data"]["status"] == "queued"
    thread = drive(job.id, steps=20)
    received = list(messages)
    thread.join(60)
    *progress, done = received
    assert done["event"] == "done" and done["data"]["status"] == "succeeded" and done["data"]["result"] == {"created": 20}
    assert all(m["event"] == "progress" and m["data"]["status"] == "running" for m in progress)
    values = [m["data"]["progress"] for m in progress]
    assert values == sorted(values) and set(values) <= {0.0} | {step / 20 for step in range(1, 21)}
    assert len({m["id"] for m in received}) == len(received)  # each event a new state


@pytest.mark.django_db(transaction=True)
def test_long_poll_returns_when_another_thread_moves_the_job(api, owner, dataset):
    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    seen = api.get(f"/api/jobs/{job.id}/").json()
    thread = drive(job.id, steps=1)
    moved = api.get(f"/api/jobs/{job.id}/", {"wait": 30, "since": seen["updated_at"]}).json()
    thread.join(60)
    assert moved["updated_at"] != seen["updated_at"] and moved["status"] in FINISHED | {"running"}


@pytest.mark.django_db(transaction=True)
def test_an_import_started_through_the_api_streams_its_result(api, dataset):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(f"/api/datasets/{dataset.id}/imports/", {
        "files": [SimpleUploadedFile(f"{i}.png", png_bytes((i, 0, 0)), content_type="image/png") for i in range(3)]},
        format="multipart")
    assert response.status_code == 202
    job = response.json()
    assert job["events_url"].startswith(f"http://testserver/api/jobs/{job['id']}/events/?access=")
    url = urlsplit(job["events_url"])
    (done,) = [parse(chunk) for chunk in client_for(None).get(f"{url.path}?{url.query}").streaming_content][1:]
    assert done["event"] == "done" and done["data"]["result"]["created"] == 3


@pytest.mark.django_db
def test_an_events_url_dies_with_the_token_it_was_issued_under(owner, dataset, job):
    """A link handed out stayed valid after its user signed out or rotated the token, until it expired (~19 min)."""
    anonymous = client_for(None)
    signed_in = client_for(owner)
    url = events_url(signed_in, job)
    assert anonymous.get(url).status_code == 200
    assert signed_in.post("/api/auth/logout/").status_code == 204
    assert anonymous.get(url).status_code == 401
    assert anonymous.get(events_url(client_for(owner), job)).status_code == 200  # a new sign-in's link works
