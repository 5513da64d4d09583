"""The real open_clip path with random weights: a checkpoint saved to a file and loaded back."""

import numpy as np
import pytest
import torch
from PIL import Image

from imagestudio.embeddings.encoders import (
    EncoderConfig,
    EncoderUnavailable,
    OpenClipEncoder,
    WeightsNotLocal,
    load_encoder,
    pick_device,
)
from tests.conftest import TINY_CLIP_CONFIG, put_in_hub_cache, put_in_url_cache, save_random_clip


def load(checkpoint):
    return OpenClipEncoder("tiny-clip", "unused", checkpoint=checkpoint, device="cpu",
                           model_config=str(TINY_CLIP_CONFIG))


@pytest.fixture(scope="module")
def encoder(tiny_clip_checkpoint):
    return load(tiny_clip_checkpoint)


def images():
    return [Image.new("RGB", (50, 40), (200, 10, 10)), Image.new("L", (30, 60), 128),
            Image.new("RGBA", (64, 64), (0, 0, 255, 100)), Image.new("CMYK", (40, 40), (0, 100, 0, 0))]


def test_shapes_unit_norm_and_determinism(encoder):
    batch = torch.stack([encoder.preprocess(image) for image in images()])
    vectors = encoder.encode_image_batch(batch)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32 and encoder.dim == 32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, encoder.encode_image_batch(batch))
    texts, truncated = encoder.encode_texts(["a red square", "grey"])
    assert texts.shape == (2, 32) and np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert truncated == [False, False]


def test_reload_gives_identical_vectors_and_identity(encoder, tiny_clip_checkpoint):
    again = load(tiny_clip_checkpoint)
    assert again.identity == encoder.identity and encoder.identity.startswith("open_clip:tiny-clip:")
    batch = torch.stack([encoder.preprocess(image) for image in images()])
    assert np.array_equal(again.encode_image_batch(batch), encoder.encode_image_batch(batch))


def test_other_weights_are_another_encoder(encoder, tmp_path):
    other = load(save_random_clip(tmp_path / "other.pt", seed=1))
    assert other.identity != encoder.identity


def test_overlong_text_is_truncated_and_said(encoder):
    vectors, truncated = encoder.encode_texts(["word " * 500])
    assert truncated == [True] and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


def test_missing_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(EncoderUnavailable, match="does not exist"):
        load(str(tmp_path / "nope.pt"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(EncoderUnavailable, match="do not match|cannot load"):
        load(str(wrong))
    with pytest.raises(EncoderUnavailable):
        OpenClipEncoder("no-such-model", "x", checkpoint=str(wrong), device="cpu")


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderUnavailable, match="CUDA"):
            pick_device("cuda")


def tagged(tag, model="tiny-clip"):
    return EncoderConfig(key="open_clip", device="cpu", clip_model=model, clip_pretrained=tag,
                         clip_model_config=str(TINY_CLIP_CONFIG) if model == "tiny-clip" else None)


@pytest.mark.parametrize(("tag", "put_in_cache"), [("hub", put_in_hub_cache), ("url", put_in_url_cache)])
def test_pretrained_weights_in_the_cache_load_without_network(clip_caches, no_network, encoder,
                                                              tiny_clip_checkpoint, tag, put_in_cache):
    from huggingface_hub import constants

    put_in_cache(tiny_clip_checkpoint)
    loaded = load_encoder(tagged(tag))
    assert loaded.identity == encoder.identity  # the same weights as the checkpoint file
    assert no_network == [] and constants.HF_HUB_OFFLINE is False  # offline only while loading


@pytest.mark.parametrize("config", [tagged("hub"), tagged("url"), tagged("laion2b_s34b_b79k", model="ViT-B-32")],
                         ids=["hub", "url", "default"])
def test_pretrained_weights_not_on_disk_fail_at_once_without_network(clip_caches, no_network, config):
    with pytest.raises(WeightsNotLocal, match="CLIP_CHECKPOINT.*CLIP_DOWNLOAD"):
        load_encoder(config)
    assert no_network == []


def test_weights_that_arrive_later_load_at_once(clip_caches, no_network, encoder, tiny_clip_checkpoint):
    """A missing file is no remembered failure: the embeddings job may download it any time."""
    with pytest.raises(WeightsNotLocal):
        load_encoder(tagged("hub"))
    put_in_hub_cache(tiny_clip_checkpoint)
    assert load_encoder(tagged("hub")).identity == encoder.identity


def test_a_load_allowed_to_download_fetches_from_the_hub_once(local_hub, no_network, encoder):
    downloaded = load_encoder(tagged("hub"), allow_download=True)
    assert downloaded.identity == encoder.identity
    assert any(request.startswith("GET ") for request in local_hub)
    from imagestudio.embeddings import encoders

    encoders._encoders.clear()  # a fresh process (the web's) finds the file without asking the hub
    asked = len(local_hub)
    assert load_encoder(tagged("hub")).identity == encoder.identity and len(local_hub) == asked
    assert no_network == []
