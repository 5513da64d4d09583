"""A worker SIGKILLed in the middle of an embedding job: the broker delivers the job again (after the visibility
timeout), it resumes, and every sample ends with exactly one vector."""

import io
import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from PIL import Image

from imagestudio.embeddings.models import Embedding
from imagestudio.jobs.models import Job
from tests.conftest import TINY_CLIP_CONFIG, zip_bytes
from tests.integration.conftest import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

IMAGES = 150


def noisy_png(seed):
    out = io.BytesIO()
    Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_killed_embedding_job_resumes_with_exactly_one_vector_per_sample(api, dataset, tiny_clip, start_worker):
    env = {"EMBEDDING_DEFAULT_ENCODER": "open_clip", "CLIP_MODEL": "tiny-clip",
           "CLIP_MODEL_CONFIG": str(TINY_CLIP_CONFIG), "CLIP_CHECKPOINT": tiny_clip, "EMBEDDING_DEVICE": "cpu",
           "EMBEDDING_BATCH_SIZE": "1", "CELERY_VISIBILITY_TIMEOUT": "4", "JOB_HEARTBEAT_SECONDS": "1",
           "JOB_ORPHAN_SECONDS": "3"}
    first = start_worker(env=env)
    archive = zip_bytes({f"{i}.png": noisy_png(i) for i in range(IMAGES)})
    imported = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"archive": SimpleUploadedFile("a.zip", archive, content_type="application/zip")},
                        format="multipart")
    assert wait_for_job(api, imported["Location"])["result"]["created"] == IMAGES

    response = api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json")
    assert response.status_code == 202
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while Embedding.objects.count() < IMAGES // 5:
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.05)
    first.kill()
    stored_at_kill = Embedding.objects.count()
    assert 0 < stored_at_kill < IMAGES, "the job must be killed half way"
    assert Job.objects.get(pk=job_id).status == "running"
    time.sleep(3.5)  # the broker's redelivery is claimed only once the killed runner's heartbeat is that old

    second = start_worker(env=env)
    job = wait_for_job(api, response["Location"], timeout=120)
    assert job["status"] == "succeeded", (job, second.output())
    assert job["attempts"] == 2
    assert job["result"]["missing_before"] <= IMAGES - stored_at_kill  # only missing work was redone
    assert Embedding.objects.count() == IMAGES
    per_sample = Embedding.objects.values("sample_id").annotate(n=Count("id")).filter(n__gt=1)
    assert not per_sample.exists()
