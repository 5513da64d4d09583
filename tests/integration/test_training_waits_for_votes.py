"""A training set asked for right after a metadata edit waits for the vote refresh that edit queued, on real
workers: the request answers a new set (not the existing set of the votes before the refresh), the training queue's
worker defers it (back to the queue, saying what it waits for) while no worker takes the refresh, and builds it once
the refresh is done, so its labels follow the edit and it is not stale."""

import time

import pytest

from imagestudio.celery import app as celery_app
from imagestudio.datasets.models import Sample
from imagestudio.datasets.services import sample_update
from imagestudio.jobs.models import Job
from imagestudio.labeling import services as labeling
from imagestudio.training.models import TrainingSet
from imagestudio.training.selectors import training_labels_page, training_set_staleness
from imagestudio.training.services import training_set_start
from tests.factories import make_samples

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_until(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout}s")


def test_a_training_set_asked_for_after_an_edit_waits_for_its_vote_refresh(dataset, owner, start_worker):
    samples = make_samples(dataset, [{"metadata": {"caption": caption}, "split": "train"}
                                     for caption in ("a cat", "a dog", "a bird")])
    lf = labeling.lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="cat word",
                       type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]},
                       low=0, high=1)
    celery_app.conf.task_always_eager = True  # a set of the votes before the edit, built here
    before, _ = training_set_start(dataset=dataset, user=owner, splits=["train"])
    celery_app.conf.task_always_eager = False
    assert TrainingSet.objects.get(pk=before.pk).ready
    trainer = start_worker(queues="training")  # nobody takes the default queue's vote refresh yet
    sample_update(sample=Sample.objects.get(pk=samples[1].pk), metadata={"caption": "a cat too"}, user=owner)
    refresh = Job.objects.get(dataset=dataset, kind="lf_votes", status="queued")

    # The set of the votes as they are now would be stale once the refresh runs: a new one is the answer, and
    # asking again meanwhile gives it again (found from outside: the old set came back, stale a moment later).
    training_set, created = training_set_start(dataset=dataset, user=owner, splits=["train"])
    assert created and training_set.id != before.id
    assert training_set_start(dataset=dataset, user=owner, splits=["train"]) == (training_set, False)
    waiting = wait_until(lambda: Job.objects.filter(
        pk=training_set.job_id, status="queued", message__contains=str(refresh.id)).first())
    assert "waiting for the refresh of the LF votes" in waiting.message
    assert waiting.attempts == 0  # a deferral is no delivery: JOB_MAX_ATTEMPTS counts the runs that did work

    start_worker(queues="default")
    job = wait_until(lambda: Job.objects.filter(pk=training_set.job_id, status__in=("succeeded", "failed")).first())
    assert job.status == "succeeded", (job.error, trainer.output())
    assert Job.objects.get(pk=refresh.pk).status == "succeeded"
    training_set.refresh_from_db()
    assert training_set_staleness(training_set) == []
    _, rows = training_labels_page(training_set=training_set)
    provenance = {row["sample_id"]: row["classes"]["cat"]["provenance"] for row in rows}
    assert provenance[samples[1].pk] == {str(lf.id): "PRESENT"}  # the edited caption's vote, not the old one


def test_a_training_set_asked_for_during_an_import_waits_for_it_and_its_vote_refresh(api, dataset, owner, start_worker):
    """Found from outside: a set asked for while an import ran was built on its first batch, whose samples had no LF
    vote yet (labelled ABSENT, no provenance), and was stale at once. Now it waits for the import, then for the vote
    refresh the import asks for as it ends (asked for after the set), and labels every new sample by its votes."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import png_bytes, zip_bytes

    make_samples(dataset, [{"metadata": {"caption": "a cat"}, "split": "train"}])
    lf = labeling.lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="cat word",
                            type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]},
                            low=0, high=1)
    trainer = start_worker(queues="training")  # nobody takes the default queue's import yet
    rows = "".join(f"img/{i}.png,train,a cat number {i}\n" for i in range(4))
    archive = zip_bytes({f"img/{i}.png": png_bytes((i * 40, 0, 0)) for i in range(4)}
                        | {"manifest.csv": f"file,split,caption\n{rows}".encode()})
    started = api.post(f"/api/datasets/{dataset.id}/imports/",
                       {"archive": SimpleUploadedFile("a.zip", archive, content_type="application/zip")},
                       format="multipart")
    assert started.status_code == 202, started.content
    import_job = Job.objects.get(pk=started.json()["id"])

    training_set, created = training_set_start(dataset=dataset, user=owner, splits=["train"])
    assert created and training_set.content_hash.startswith("pending-")
    waiting = wait_until(lambda: Job.objects.filter(
        pk=training_set.job_id, status="queued", message__contains=str(import_job.id)).first())
    assert "waiting for the refresh of the LF votes or a job changing them" in waiting.message

    start_worker(queues="default")
    job = wait_until(lambda: Job.objects.filter(pk=training_set.job_id, status__in=("succeeded", "failed")).first())
    assert job.status == "succeeded", (job.error, trainer.output())
    refresh = Job.objects.get(pk=Job.objects.get(pk=import_job.pk).result["lf_refresh_job"])
    assert refresh.status == "succeeded" and refresh.created_at > job.created_at
    training_set.refresh_from_db()
    assert training_set.snapshot["samples"] == 5 and training_set_staleness(training_set) == []
    _, labels = training_labels_page(training_set=training_set)
    assert [row["classes"]["cat"]["provenance"] for row in labels] == [{str(lf.id): "PRESENT"}] * 5
