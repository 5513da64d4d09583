"""The visual feature space: conse-offline stores EfficientNet-Lite0's pooled features beside its joint (ConSE)
vectors; image queries and fast models use them by default, text queries keep the joint space."""

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from imagestudio.datasets.models import Sample
from imagestudio.embeddings.models import Embedding
from imagestudio.embeddings.store import encoder_for
from tests.api.test_embeddings import COLOURS, embed, ingest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conse(settings):
    settings.EMBEDDING_DEFAULT_ENCODER = "conse-offline"
    settings.EMBEDDING_DEVICE = "cpu"


def test_one_job_fills_both_spaces_and_resumes_the_missing_one(api, dataset, conse):
    ingest(api, dataset, COLOURS[:3])
    job = embed(api, dataset)
    spaces = job["result"]["spaces"]
    assert {space: (entry["dim"], entry["computed"]) for space, entry in spaces.items()} == {
        "joint": (384, 3), "visual": (1280, 3)}
    coverage = {row["space"]: row for row in api.get(f"/api/datasets/{dataset.id}/embeddings/").json()["results"]}
    assert coverage["visual"]["identity"] == coverage["joint"]["identity"] + "#visual"
    assert coverage["visual"]["count"] == coverage["joint"]["count"] == 3
    # a job that died between the spaces: only the missing vectors are computed again
    _, visual = encoder_for("conse-offline", "visual")
    Embedding.objects.filter(encoder=visual, sample=Sample.objects.order_by("id").first()).delete()
    again = embed(api, dataset)["result"]["spaces"]
    assert (again["joint"]["computed"], again["visual"]["computed"]) == (0, 1)


def test_stored_visual_vectors_are_the_networks_pooled_features(api, dataset, conse):
    ingest(api, dataset, COLOURS[:2])
    embed(api, dataset)
    encoder, visual = encoder_for("conse-offline", "visual")
    sample = Sample.objects.order_by("id").first()
    with default_storage.open(sample.original, "rb") as stream:
        batch = encoder.preprocess(Image.open(stream)).unsqueeze(0)
    with __import__("torch").inference_mode():
        pooled = encoder.classifier._avg_pooling(encoder.classifier.extract_features(batch)).flatten(1)[0].numpy()
    stored = np.frombuffer(Embedding.objects.get(sample=sample, encoder=visual).vector, dtype=np.float16)
    assert np.allclose(stored.astype(np.float32), pooled / np.linalg.norm(pooled), atol=2e-3)


def test_queries_pick_their_space(api, dataset, conse):
    ingest(api, dataset, COLOURS)
    embed(api, dataset)
    url = f"/api/datasets/{dataset.id}/embeddings/search/"
    first = Sample.objects.order_by("id").first()
    by_image = api.post(url, {"sample_id": first.id, "limit": 3}, format="json").json()
    assert by_image["space"] == "visual" and by_image["results"][0]["sample_id"] == first.id
    assert by_image["results"][0]["score"] == pytest.approx(1.0, abs=2e-3)
    assert api.post(url, {"sample_id": first.id, "space": "joint"}, format="json").json()["space"] == "joint"
    assert api.post(url, {"text": "a red square"}, format="json").json()["space"] == "joint"
    refused = api.post(url, {"text": "a red square", "space": "visual"}, format="json")
    assert refused.status_code == 400 and "space" in refused.json()


def test_lf_space_defaults_and_is_checked(api, dataset, conse):
    ingest(api, dataset, COLOURS)
    embed(api, dataset)
    first = Sample.objects.order_by("id").first()
    base = {"label_class": "cat", "high": 0.9}
    image_lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**base, "name": "like first", "type": "similarity_image",
                                                              "config": {"sample_id": first.id}}, format="json")
    assert image_lf.status_code == 201 and image_lf.json()["config"]["space"] == "visual"
    assert image_lf.json()["encoder"].endswith("#visual")
    text_lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**base, "name": "says red", "type": "similarity_text",
                                                             "config": {"text": "red", "space": "visual"}},
                       format="json")
    assert text_lf.status_code == 400 and "config" in text_lf.json()
