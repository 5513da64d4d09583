"""Embeddings through the HTTP API with the real open_clip path (tiny random weights)."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.datasets.models import Role, Sample
from imagestudio.embeddings import encoders
from imagestudio.embeddings.models import Embedding, EmbeddingSet
from imagestudio.embeddings.store import encoder_for
from imagestudio.jobs.models import Job
from tests.conftest import TINY_CLIP_CONFIG, TINY_CLIP_HUB_REPO, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(client, dataset, colours, split="train", size=(80, 60)):
    files = [SimpleUploadedFile(f"{split}-{'-'.join(map(str, c))}.png", png_bytes(c, size=size),
                                content_type="image/png") for c in colours]
    response = client.post(f"/api/datasets/{dataset.id}/imports/", {"files": files, "split": split},
                           format="multipart")
    assert client.get(response["Location"]).json()["status"] == "succeeded"


def embed(client, dataset, **body):
    response = client.post(f"/api/datasets/{dataset.id}/embeddings/", body, format="json")
    assert response.status_code == 202, response.content
    return client.get(response["Location"]).json()


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 10, 10), (10, 10, 10), (200, 200, 0)]


def test_compute_coverage_and_rerun_only_missing(api, dataset, tiny_clip):
    ingest(api, dataset, COLOURS[:4])
    ingest(api, dataset, COLOURS[4:], split="dev")
    job = embed(api, dataset)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "embeddings" and job["result"]["computed"] == 6 and job["result"]["dim"] == 32
    assert job["result"]["identity"].startswith("open_clip:tiny-clip:")
    coverage = api.get(f"/api/datasets/{dataset.id}/embeddings/").json()["results"]
    assert coverage == [{**coverage[0], "encoder": "open_clip", "count": 6, "samples": 6, "coverage": 1.0}]
    again = embed(api, dataset)
    assert (again["result"]["missing_before"], again["result"]["computed"]) == (0, 0)
    assert Embedding.objects.count() == 6
    ingest(api, dataset, [(1, 2, 3)])
    assert embed(api, dataset, split="train")["result"]["computed"] == 1
    assert Embedding.objects.count() == 7
    [grown] = api.get(f"/api/datasets/{dataset.id}/embeddings/").json()["results"]
    assert grown["count"] == 7 and grown["version"] == coverage[0]["version"] + 1
    assert grown["updated_at"] > coverage[0]["updated_at"]  # it stayed at the first vectors' time


def _embedding_cancelled_after_its_first_batch(api, dataset, settings, monkeypatch):
    """The job of embedding 4 new images, cancelled by its user while it runs (after its first batch of one)."""
    from imagestudio.embeddings import services
    from imagestudio.jobs.services import job_cancel, run_job

    ingest(api, dataset, COLOURS[2:])
    settings.EMBEDDING_BATCH_SIZE = 1
    with monkeypatch.context() as paused:
        paused.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
        job_id = api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json").json()["id"]
    real_add = services.vectors_add

    def cancelled_after_the_first_batch(**kwargs):
        added = real_add(**kwargs)
        job = Job.objects.get(pk=job_id)
        if job.status == "running":
            job_cancel(job=job)
        return added

    monkeypatch.setattr(services, "vectors_add", cancelled_after_the_first_batch)
    run_job(job_id, services.embeddings_run)
    job = api.get(f"/api/jobs/{job_id}/").json()
    assert job["status"] == "cancelled" and job["result"]["computed"] == 1 and job["result"]["missing_before"] == 4
    return job


def test_a_cancelled_embeddings_job_keeps_its_vectors_and_the_votes_follow_them(api, dataset, tiny_clip, settings,
                                                                              monkeypatch):
    """The votes stayed those of before the job (a training set built next said nothing was stale) and its result
    was {}: the vectors stored before the cancel refreshed nothing until another embeddings job succeeded."""
    ingest(api, dataset, COLOURS[:2])
    embed(api, dataset)
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {"name": "any", "label_class": "cat", "type": "similarity_text",
                                                       "config": {"text": "a photo"}, "high": -1}, format="json")
    assert lf.status_code == 201 and lf.json()["votes"]["present"] == 2
    _embedding_cancelled_after_its_first_batch(api, dataset, settings, monkeypatch)
    votes = api.get(f"/api/datasets/{dataset.id}/lfs/{lf.json()['id']}/").json()["votes"]
    assert votes["present"] == 3 == Embedding.objects.filter(sample__dataset=dataset).values("sample").distinct().count()


def test_a_refresh_that_cannot_be_queued_does_not_hide_why_the_embeddings_job_stopped(api, dataset, tiny_clip,
                                                                                     settings, monkeypatch):
    from imagestudio.common.errors import ServiceUnavailable
    from imagestudio.embeddings import services

    def broker_down(**kwargs):
        raise ServiceUnavailable("The task queue is unreachable.")

    monkeypatch.setattr(services.pipeline, "after_embeddings", broker_down)
    job = _embedding_cancelled_after_its_first_batch(api, dataset, settings, monkeypatch)
    assert job["error"] == ""  # cancelled, its result recorded (above), not failed on the refresh


def test_stored_vectors_equal_a_fresh_encoding(api, dataset, tiny_clip):
    ingest(api, dataset, COLOURS[:2])
    embed(api, dataset)
    encoder, record = encoder_for("open_clip")
    from django.core.files.storage import default_storage
    from PIL import Image

    sample = Sample.objects.order_by("id").first()
    with default_storage.open(sample.original, "rb") as stream:
        fresh = encoder.encode_image_batch(encoder.preprocess(Image.open(stream)).unsqueeze(0))[0]
    stored = np.frombuffer(Embedding.objects.get(sample=sample).vector, dtype=np.float16).astype(np.float32)
    assert np.allclose(stored, fresh, atol=2e-3)


def test_search_by_text_image_and_crop(api, dataset, tiny_clip):
    ingest(api, dataset, COLOURS)
    embed(api, dataset)
    url = f"/api/datasets/{dataset.id}/embeddings/search/"
    first = Sample.objects.order_by("id").first()
    by_image = api.post(url, {"sample_id": first.id, "limit": 6}, format="json").json()
    assert by_image["searched"] == 6 and len(by_image["results"]) == 6
    scores = [hit["score"] for hit in by_image["results"]]
    assert scores == sorted(scores, reverse=True)
    own = next(hit["score"] for hit in by_image["results"] if hit["sample_id"] == first.id)
    assert own == pytest.approx(1, abs=2e-3) and own >= scores[0] - 2e-3  # an image is most similar to itself
    assert all(-1 <= score <= 1 for score in scores)  # cosines, though bfloat16 rows round past 1
    assert len(api.post(url, {"sample_id": first.id, "limit": 3}, format="json").json()["results"]) == 3
    by_crop = api.post(url, {"sample_id": first.id, "box": [0, 0, 40, 30]}, format="json").json()
    assert len(by_crop["results"]) == 6
    by_text = api.post(url, {"text": "a red square", "split": "train"}, format="json").json()
    assert by_text["truncated"] is False and by_text["searched"] == 6
    long = api.post(url, {"text": "red " * 400}, format="json").json()
    assert long["truncated"] is True and "truncated" in long["message"]
    api.post(f"/api/datasets/{dataset.id}/samples/resample/", {"split": "train", "sample_size": 2, "seed": 1},
             format="json")
    assert api.post(url, {"text": "red", "in_sample": True}, format="json").json()["searched"] == 2


@pytest.mark.parametrize("body, field", [
    ({}, "non_field_errors"),
    ({"text": "a", "sample_id": 1}, "non_field_errors"),
    ({"text": "a", "box": [0, 0, 1, 1]}, "box"),
    ({"sample_id": "SAMPLE", "box": [0, 0, 10]}, "box"),
    ({"sample_id": "SAMPLE", "box": [10, 10, 5, 20]}, "box"),
    ({"sample_id": "SAMPLE", "box": [0, 0, 81, 60]}, "box"),
    ({"sample_id": "SAMPLE", "box": [5, 5, 5, 10]}, "box"),
    ({"sample_id": "SAMPLE", "box": [-1, 0, 5, 5]}, "box"),
    ({"sample_id": 99999999}, "sample_id"),
    ({"text": "   "}, "text"),
    ({"text": "a", "encoder": "dall-e"}, "encoder"),
    ({"text": "a", "limit": 0}, "limit"),
    ({"text": "a", "split": "holdout"}, "split"),
])
def test_search_bad_input(api, dataset, tiny_clip, body, field):
    ingest(api, dataset, COLOURS[:1])
    embed(api, dataset)
    sample = Sample.objects.get()
    body = {k: sample.id if v == "SAMPLE" else v for k, v in body.items()}
    response = api.post(f"/api/datasets/{dataset.id}/embeddings/search/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_search_without_embeddings_is_409_with_hint(api, dataset, tiny_clip):
    ingest(api, dataset, COLOURS[:1])
    response = api.post(f"/api/datasets/{dataset.id}/embeddings/search/", {"text": "red"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "embeddings_missing"
    assert f"/api/datasets/{dataset.id}/embeddings/" in response.json()["detail"]


def test_compute_bad_input(api, dataset, tiny_clip, settings, tmp_path):
    url = f"/api/datasets/{dataset.id}/embeddings/"
    empty = api.post(url, {}, format="json")
    assert empty.status_code == 400 and empty.json()["code"] == "no_samples"
    ingest(api, dataset, COLOURS[:1])
    assert api.post(url, {"encoder": "nope"}, format="json").status_code == 400
    assert api.post(url, {"split": "dev"}, format="json").json()["code"] == "no_samples"
    settings.CLIP_CHECKPOINT = str(tmp_path / "missing.pt")
    missing = api.post(url, {"encoder": "open_clip"}, format="json")
    assert missing.status_code == 400 and "does not exist" in missing.json()["encoder"][0]


def test_mismatched_checkpoint_fails_the_job_with_reason(api, dataset, tiny_clip, settings, tmp_path):
    import torch

    ingest(api, dataset, COLOURS[:1])
    wrong = tmp_path / "wrong.pt"
    torch.save({"unrelated": torch.zeros(2)}, wrong)
    settings.CLIP_CHECKPOINT = str(wrong)
    job = embed(api, dataset)
    assert job["status"] == "failed" and "do not match" in job["error"]
    assert not Embedding.objects.exists()


def test_auto_embed_after_import(api, owner, tiny_clip):
    created = api.post("/api/datasets/", {"name": "Auto", "classes": ["x"], "auto_embed": True}, format="json").json()
    assert created["auto_embed"] is True
    from imagestudio.datasets.models import Dataset

    dataset = Dataset.objects.get(pk=created["id"])
    ingest(api, dataset, COLOURS[:3])
    import_job = api.get(f"/api/jobs/?dataset={dataset.id}&kind=import").json()["results"][0]
    follow_up = api.get(f"/api/jobs/{import_job['result']['auto_embed_job']}/").json()
    assert follow_up["kind"] == "embeddings" and follow_up["status"] == "succeeded"
    assert EmbeddingSet.objects.get(dataset=dataset).count == 3


def test_resources_allocate_list_release_and_budget(api, owner, dataset, tiny_clip, settings, member_client):
    url = f"/api/datasets/{dataset.id}/resources/"
    ingest(api, dataset, COLOURS[:2])
    before = api.post(url, {}, format="json")
    assert before.status_code == 409 and before.json()["code"] == "embeddings_missing"
    embed(api, dataset)
    allocated = api.post(url, {}, format="json")
    assert allocated.status_code == 201 and allocated.json()["bytes"] == 2 * (64 * 2 + 17)  # 32 dims pad to 64 bfloat16
    assert api.get(url).json()["count"] == 1
    assert member_client(Role.VIEWER).post(url, {}, format="json").status_code == 403
    settings.RESOURCE_MEMORY_BUDGET_BYTES = 300  # room for one of the two
    from imagestudio.datasets.services import dataset_create

    other = dataset_create(user=owner, name="Other")
    ingest(api, other, COLOURS[2:4])
    embed(api, other)
    exhausted = api.post(f"/api/datasets/{other.id}/resources/", {}, format="json")
    assert exhausted.status_code == 409 and exhausted.json()["code"] == "budget_exhausted"
    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 404
    assert api.post(f"/api/datasets/{other.id}/resources/", {}, format="json").status_code == 201


def test_idle_allocations_are_released(api, dataset, tiny_clip, settings):
    ingest(api, dataset, COLOURS[:1])
    embed(api, dataset)
    api.post(f"/api/datasets/{dataset.id}/resources/", {}, format="json")
    settings.RESOURCE_IDLE_SECONDS = -1
    assert api.get(f"/api/datasets/{dataset.id}/resources/").json()["count"] == 0
    # the read wrote nothing: the periodic task releases the idle allocation and its pinned matrix
    from imagestudio.embeddings.models import ResourceAllocation
    from imagestudio.embeddings.store import cache_held
    from workers.tasks.embeddings import expire_resources

    assert ResourceAllocation.objects.filter(dataset=dataset).count() == 1 and cache_held()
    expire_resources.apply()
    assert not ResourceAllocation.objects.filter(dataset=dataset).exists() and not cache_held()


def test_management_command_embeds_with_progress(api, dataset, tiny_clip, capsys):
    from django.core.management import call_command

    ingest(api, dataset, COLOURS[:3])
    call_command("embed_dataset", str(dataset.id), "--encoder", "open_clip")
    captured = capsys.readouterr()
    assert "100.0%" in captured.err and "3 vectors computed" in captured.out
    assert Embedding.objects.count() == 3
    from imagestudio.jobs.models import Job

    assert Job.objects.filter(kind="embeddings", status="succeeded").count() == 1


def test_conse_offline_search_finds_the_cat_and_the_coffee(api, dataset, settings):
    """Real semantics with no download: scikit-image's cat and coffee photos, found by text."""
    import io

    from PIL import Image
    from skimage import data as photos

    settings.EMBEDDING_DEFAULT_ENCODER = "conse-offline"
    files = []
    for name, array in (("chelsea.jpg", photos.chelsea()), ("coffee.jpg", photos.coffee()),
                        ("astronaut.jpg", photos.astronaut())):
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="JPEG")
        files.append(SimpleUploadedFile(name, out.getvalue(), content_type="image/jpeg"))
    api.post(f"/api/datasets/{dataset.id}/imports/", {"files": files}, format="multipart")
    job = embed(api, dataset)
    assert job["status"] == "succeeded" and job["result"]["identity"].startswith("conse-offline:"), job
    url = f"/api/datasets/{dataset.id}/embeddings/search/"
    names = dict(Sample.objects.values_list("id", "external_id"))
    cat = api.post(url, {"text": "a photo of a cat"}, format="json").json()["results"]
    coffee = api.post(url, {"text": "a cup of coffee"}, format="json").json()["results"]
    assert names[cat[0]["sample_id"]] == "chelsea.jpg"
    assert names[coffee[0]["sample_id"]] == "coffee.jpg"


def test_quickstart_sets_up_the_demo(settings, capsys):
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("quickstart", "--no-serve")
    out = capsys.readouterr().out
    assert "60 images" in out and "60 vectors" in out and "Token:" in out and "conse-offline" in out
    key = out.split("Token:")[1].split()[0]
    signed_in = APIClient()
    signed_in.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert signed_in.get("/api/datasets/").json()["count"] == 1  # the printed token signs in, to the demo dataset
    # The server was stopped while the embedding job ran: the next start runs it again, and it finishes the work.
    job = Job.objects.get(kind="embeddings")
    Job.objects.filter(pk=job.pk).update(status="running", finished_at=None)
    stored = Embedding.objects.count()
    Embedding.objects.filter(pk__in=Embedding.objects.values("pk")[:10]).delete()
    call_command("quickstart", "--no-serve")  # a second run reuses what is there
    assert "1 run again, 0 failed" in capsys.readouterr().out
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result["computed"]) == ("succeeded", 2, 10)
    assert (Sample.objects.count(), Embedding.objects.count()) == (60, stored)


# ---------------------------------------------------------------- pretrained weights: a request never downloads


@pytest.fixture
def clip_tag(settings, clip_caches):
    """open_clip by a pretrained tag, no checkpoint file, downloads off: the defaults with CLIP_CHECKPOINT unset."""
    settings.EMBEDDING_DEFAULT_ENCODER = "open_clip"
    settings.CLIP_CHECKPOINT = None
    settings.CLIP_DOWNLOAD = False
    settings.EMBEDDING_DEVICE = "cpu"


def test_weights_not_on_disk_are_a_400_naming_the_settings_without_network(api, dataset, clip_tag, settings,
                                                                           no_network):
    settings.CLIP_MODEL, settings.CLIP_PRETRAINED = "ViT-B-32", "laion2b_s34b_b79k"
    ingest(api, dataset, COLOURS[:1])
    sample = Sample.objects.get()
    for path, body in [("resources/", {"encoder": "open_clip"}),
                       ("embeddings/search/", {"sample_id": sample.id, "box": [0, 0, 0, 0], "encoder": "open_clip"}),
                       ("embeddings/search/", {"text": "a cat", "encoder": "open_clip"}),
                       ("embeddings/", {"encoder": "open_clip"})]:
        response = api.post(f"/api/datasets/{dataset.id}/{path}", body, format="json")
        assert response.status_code == 400, (path, response.content)
        message = response.json()["encoder"][0]
        assert "not on this machine's disk" in message and "CLIP_CHECKPOINT" in message and "CLIP_DOWNLOAD" in message
    assert no_network == [] and not Job.objects.filter(kind="embeddings").exists()


def test_only_the_embeddings_job_downloads_then_requests_read_the_cache(api, dataset, clip_tag, settings, local_hub,
                                                                       no_network):
    settings.CLIP_MODEL, settings.CLIP_PRETRAINED = "tiny-clip", "hub"
    settings.CLIP_MODEL_CONFIG = str(TINY_CLIP_CONFIG)
    ingest(api, dataset, COLOURS[:2])
    search = f"/api/datasets/{dataset.id}/embeddings/search/"
    assert api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json").status_code == 400
    settings.CLIP_DOWNLOAD = True
    assert api.post(search, {"text": "red"}, format="json").status_code == 400
    assert local_hub == []  # no request asked the hub, downloads allowed or not
    job = embed(api, dataset)
    assert job["status"] == "succeeded", job
    assert f"GET /{TINY_CLIP_HUB_REPO}/resolve/main/open_clip_pytorch_model.bin" in local_hub
    encoders._encoders.clear()  # as in a web process, which did not run the job
    asked = len(local_hub)
    found = api.post(search, {"text": "red"}, format="json")
    assert found.status_code == 200 and len(found.json()["results"]) == 2, found.content
    assert len(local_hub) == asked and no_network == []
