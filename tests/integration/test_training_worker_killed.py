"""A worker SIGKILLed in the middle of a fast-model training job: its heartbeat stops, the reaper delivers the job
again (long before the broker's visibility timeout), it trains again, and its results exist exactly once (one ready
model, a readable artifact, one prediction per sample and class)."""

import json
import time

import numpy as np
import pytest
from django.db.models import Count

from imagestudio.annotations.services import annotations_import
from imagestudio.common.artifacts import artifact_read
from imagestudio.datasets.models import Sample
from imagestudio.datasets.services import dataset_add_counts, dataset_create
from imagestudio.embeddings.store import encoder_for, vectors_add
from imagestudio.jobs.services import jobs_requeue_orphaned
from imagestudio.training.models import FastModel, Prediction
from tests.conftest import TINY_CLIP_CONFIG
from tests.integration.conftest import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SAMPLES = 6000
CLASSES = 8
DIM = 1024  # CLIP ViT-H/14's width: a real-sized regression, so each class takes a noticeable time to fit
MODEL_NAME = "tiny-clip-1024"


@pytest.fixture(scope="module")
def wide_clip(tmp_path_factory):
    """A tiny random open_clip model with 1024-d embeddings: (config path, checkpoint path)."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("clip1024")
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["embed_dim"] = DIM
    config_path = folder / f"{MODEL_NAME}.json"  # open_clip names the model after the file
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(str(config_path))
    torch.manual_seed(1)
    checkpoint = folder / f"{MODEL_NAME}.pt"
    torch.save(open_clip.create_model(MODEL_NAME).state_dict(), checkpoint)
    return str(config_path), str(checkpoint)


@pytest.fixture
def wide_encoder(settings, wide_clip):
    config, checkpoint = wide_clip
    settings.EMBEDDING_DEFAULT_ENCODER = "open_clip"
    settings.CLIP_MODEL, settings.CLIP_MODEL_CONFIG, settings.CLIP_CHECKPOINT = MODEL_NAME, config, checkpoint
    settings.EMBEDDING_DEVICE = "cpu"
    return {"EMBEDDING_DEFAULT_ENCODER": "open_clip", "CLIP_MODEL": MODEL_NAME, "CLIP_MODEL_CONFIG": config,
            "CLIP_CHECKPOINT": checkpoint, "EMBEDDING_DEVICE": "cpu"}


def embedded_dataset(owner, n_samples=SAMPLES, n_classes=CLASSES):
    """Samples with vectors and full ground truth for every class: labels from a noisy linear rule, so the
    regressions have real work to do. Built with the domain services (no images are needed to train).
    Returns (dataset, sample ids, the vectors as stored, classes)."""
    rng = np.random.default_rng(7)
    dataset = dataset_create(user=owner, name="Training", classes=[f"class{i}" for i in range(n_classes)])
    splits = rng.choice(["train", "dev", "valid"], size=n_samples, p=[0.8, 0.1, 0.1])
    samples = Sample.objects.bulk_create(
        Sample(dataset=dataset, split=split, external_id=f"s{i}", file_name=f"s{i}.png", original=f"none/{i}.png",
               thumbnail=f"none/{i}.jpg", width=1, height=1, format="PNG", bytes=1, sha256=f"{i:064x}")
        for i, split in enumerate(splits))
    dataset_add_counts(dataset_id=dataset.id, counts={s: int((splits == s).sum()) for s in set(splits)})
    ids = [sample.pk for sample in samples]
    _, record = encoder_for(None)
    assert record.dim == DIM
    vectors = rng.normal(size=(n_samples, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors_add(dataset=dataset, record=record, sample_ids=ids, vectors=vectors)
    classes = list(dataset.classes.order_by("id"))
    logits = vectors @ rng.normal(size=(DIM, n_classes)) + rng.normal(scale=0.7, size=(n_samples, n_classes))
    annotations_import(dataset=dataset, user=owner, rows=[
        (ids[i], splits[i], label_class, "PRESENT" if logits[i, k] > 0 else "ABSENT")
        for i in range(n_samples) for k, label_class in enumerate(classes)])
    return dataset, np.array(ids), vectors.astype(np.float16).astype(np.float32), classes


def pages(client, url):
    """Every result of a limit/offset list."""
    results, offset = [], 0
    while True:
        page = client.get(f"{url}{'&' if '?' in url else '?'}limit=500&offset={offset}")
        assert page.status_code == 200, page.content
        body = page.json()
        results += body["results"]
        offset += len(body["results"])
        if not body["results"] or offset >= body["count"]:
            assert offset == body["count"]
            return results


def predicted_samples(client, dataset, model_id, label_class, word):
    """(count, first page of ids) of the samples list filtered on the model predicting `word` for the class."""
    body = client.get(f"/api/datasets/{dataset.id}/samples/?prediction={model_id}:{label_class}:{word}&fields="
                      f"&ordering=id&limit=500").json()
    assert body["count_exact"], body
    return body["count"], [row["id"] for row in body["results"]]


def test_killed_training_job_is_redelivered_and_stores_its_results_once(api, owner, wide_encoder, start_worker,
                                                                       settings):
    dataset, ids, vectors, classes = embedded_dataset(owner)
    settings.JOB_HEARTBEAT_SECONDS, settings.JOB_ORPHAN_SECONDS = 1, 3
    env = {**wide_encoder, "JOB_HEARTBEAT_SECONDS": "1", "JOB_ORPHAN_SECONDS": "3"}
    first = start_worker(env=env, queues="training")

    response = api.post(f"/api/datasets/{dataset.id}/models/", {"label_source": "ground_truth"}, format="json")
    assert response.status_code == 202, response.content
    location, job_id = response["Location"], response.json()["id"]

    # Kill once at least one class is trained and at least one is left: the job is running, no result stored yet.
    deadline = time.monotonic() + 90
    while True:
        job = api.get(location).json()
        assert job["status"] in ("queued", "running"), ("finished before it could be killed", job, first.output())
        if job["status"] == "running" and 0 < job["progress"] < 0.8:
            break
        assert time.monotonic() < deadline, (job, first.output())
        time.sleep(0.05)
    first.kill()
    killed = api.get(location).json()
    assert (killed["status"], killed["attempts"]) == ("running", 1), killed
    listed = [m for m in pages(api, f"/api/datasets/{dataset.id}/models/") if m["job"] == job_id]
    assert len(listed) == 1 and not listed[0]["ready"], listed
    model_id = listed[0]["id"]
    assert not Prediction.objects.filter(model_id=model_id).exists()

    killed_at = time.monotonic()
    assert jobs_requeue_orphaned() == {"requeued": 0, "failed": 0}  # its last heartbeat is recent

    second = start_worker(env=env, queues="training")
    while (counts := jobs_requeue_orphaned()) == {"requeued": 0, "failed": 0}:
        assert time.monotonic() < killed_at + 30, api.get(location).json()
        time.sleep(0.2)
    assert counts == {"requeued": 1, "failed": 0} and time.monotonic() - killed_at > 2
    job = wait_for_job(api, location, timeout=150)
    assert job["status"] == "succeeded", (job, second.output())
    assert job["attempts"] == 2, job
    assert job["result"]["model"] == model_id

    # One model for the job, ready, with metrics for every class.
    listed = [m for m in pages(api, f"/api/datasets/{dataset.id}/models/") if m["job"] == job_id]
    assert [m["id"] for m in listed] == [model_id]
    model = api.get(f"/api/datasets/{dataset.id}/models/{model_id}/").json()
    assert model["ready"] and model["version"] == 1
    assert sorted(model["metrics"]) == sorted(c.name for c in classes)
    assert all(model["metrics"][c.name]["valid"]["labeled"] > 0 for c in classes)

    # The artifact is readable (its hash checks out), and its scores are its regressions applied to the vectors.
    record = FastModel.objects.get(pk=model_id)
    arrays = artifact_read(record.artifact, record.artifact_sha256)
    assert np.array_equal(arrays["ids"], ids)
    assert arrays["class_ids"].tolist() == [c.id for c in classes]
    scores = {c.name: arrays[f"scores_{c.id}"] for c in classes}
    for k, c in enumerate(classes):
        recomputed = vectors @ arrays["coef"][k] + arrays["intercept"][k]
        # the scan matrix's bfloat16 precision (embeddings/matrix.py): within 2^-8 of the coefficients' norm
        bound = float(np.linalg.norm(arrays["coef"][k])) / 256
        assert np.abs(scores[c.name] - recomputed).max() <= bound, c.name

    # Predictions: exactly one per (sample, class), agreeing with the artifact's scores.
    predictions = pages(api, f"/api/datasets/{dataset.id}/models/{model_id}/predictions/")
    pairs = [(p["sample_id"], p["label_class"]) for p in predictions]
    assert len(pairs) == len(set(pairs)) == SAMPLES * CLASSES
    row = {sample_id: k for k, sample_id in enumerate(ids.tolist())}
    for p in predictions:
        score = float(scores[p["label_class"]][row[p["sample_id"]]])
        assert p["score"] == pytest.approx(score, abs=1e-5)
        assert p["label"] == ("PRESENT" if score >= 0 else "ABSENT")
    duplicated = (Prediction.objects.filter(model_id=model_id).values("label_class_id", "sample_id")
                  .annotate(n=Count("sample_id")).filter(n__gt=1))
    assert not duplicated.exists()
    # The samples list filters on the stored predictions: PRESENT exactly where the score is 0 or more.
    for c in classes:
        present = scores[c.name] >= 0
        assert 0 < present.sum() < SAMPLES
        words = (("PRESENT", ids[present]), ("ABSENT", ids[~present])) if c == classes[0] else (("PRESENT", ids[present]),)
        for word, expected in words:
            count, first_page = predicted_samples(api, dataset, model_id, c.name, word)
            assert (count, first_page) == (len(expected), expected[:500].tolist()), (c.name, word)



def test_redelivery_after_the_results_were_stored_succeeds_and_adds_nothing(api, owner, wide_encoder):
    """The crash window between storing a model's results and marking its job succeeded, made deterministic: the
    job runs to the end (tasks in-process), is put back to 'running' as a dead worker leaves it, and the task is
    delivered again."""
    from imagestudio.celery import app as celery_app
    from imagestudio.jobs.models import Job

    dataset, _, _, _ = embedded_dataset(owner, n_samples=400, n_classes=2)
    response = api.post(f"/api/datasets/{dataset.id}/models/", {"label_source": "ground_truth"}, format="json")
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert (job["status"], job["attempts"]) == ("succeeded", 1), job
    model_id = job["result"]["model"]
    stored = sorted(Prediction.objects.filter(model_id=model_id).values_list("label_class_id", "sample_id"))

    Job.objects.filter(pk=job["id"]).update(status="running", finished_at=None)
    celery_app.tasks["workers.tasks.training.train_model"].apply(args=[job["id"]])
    job = api.get(response["Location"]).json()
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job
    assert [m["id"] for m in api.get(f"/api/datasets/{dataset.id}/models/").json()["results"]] == [model_id]
    assert sorted(Prediction.objects.filter(model_id=model_id).values_list("label_class_id", "sample_id")) == stored
