"""Where vectors live: rows in the database (durable, shared by web and workers on every machine),
loaded into one contiguous float16 matrix per (dataset, encoder) and cached per process.
"""

import os

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from imagestudio.common.arrays import locate
from imagestudio.common.cache import VersionedLRU
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.datasets.models import SPLIT_CODES, Sample

from .encoders import (
    ENCODER_KEYS,
    EncoderConfig,
    EncoderUnavailable,
    load_encoder,
    require_local_weights,
    space_dim,
    space_identity,
    stored_space,
)
from .matrix import Matrix
from .models import Embedding, EmbeddingSet, EncoderRecord, ResourceAllocation

VECTOR_DTYPE = np.float16

# Pinned entries (dedicated resources) are never evicted.
_matrices = VersionedLRU("embedding matrices", max_bytes=settings.EMBEDDING_CACHE_BYTES, size=lambda m: m.nbytes)


def encoder_config(key=None):
    key = key or settings.EMBEDDING_DEFAULT_ENCODER
    if key not in ENCODER_KEYS:
        raise ValidationFailed(f"Unknown encoder {key!r}; choose one of {', '.join(ENCODER_KEYS)}.", field="encoder")
    return EncoderConfig(key=key, device=settings.EMBEDDING_DEVICE, clip_model=settings.CLIP_MODEL,
                         clip_pretrained=settings.CLIP_PRETRAINED, clip_checkpoint=settings.CLIP_CHECKPOINT,
                         clip_model_config=settings.CLIP_MODEL_CONFIG)


def check_encoder_settings(key=None):
    """Refuse at request time what is sure to fail in the worker (a missing checkpoint file, pretrained weights
    neither on disk nor to be downloaded)."""
    config = encoder_config(key)
    if config.key != "open_clip":
        return config
    if config.clip_checkpoint and not os.path.isfile(config.clip_checkpoint):
        raise ValidationFailed(f"The configured CLIP checkpoint {config.clip_checkpoint!r} does not exist.",
                               field="encoder")
    if not config.clip_checkpoint and not settings.CLIP_DOWNLOAD:
        try:
            require_local_weights(config.clip_model, config.clip_pretrained)
        except EncoderUnavailable as exc:
            raise ValidationFailed(str(exc), field="encoder", code="encoder_unavailable") from None
    return config


def _loaded(key, allow_download):
    try:
        return load_encoder(encoder_config(key), allow_download=allow_download)
    except EncoderUnavailable as exc:
        raise ValidationFailed(str(exc), field="encoder", code="encoder_unavailable") from None


def _record(encoder, space):
    record, _ = EncoderRecord.objects.get_or_create(
        identity=space_identity(encoder, space),
        defaults={"key": encoder.key, "dim": space_dim(encoder, space), "space": space})
    return record


def encoder_for(key=None, space="joint"):
    """(loaded encoder, the EncoderRecord of the vectors that serve `space`). ValidationFailed when the encoder
    cannot load (its weights not on local disk included: web requests never download) or the space is unknown."""
    encoder = _loaded(key, allow_download=False)
    try:
        stored = stored_space(encoder, space)
    except EncoderUnavailable as exc:
        raise ValidationFailed(str(exc), field="space") from None
    return encoder, _record(encoder, stored)


def encoder_records(key=None, *, allow_download=False):
    """(loaded encoder, {space: EncoderRecord}) for every space the encoder stores; pretrained weights are
    downloaded only when `allow_download` (the embeddings job)."""
    encoder = _loaded(key, allow_download)
    return encoder, {space: _record(encoder, space) for space in encoder.spaces}


def vectors_add(*, dataset, record, sample_ids, vectors):
    """Store vectors (ignoring samples that already have one), bump the set's version; returns how many were new."""
    vectors = np.asarray(vectors, dtype=VECTOR_DTYPE)
    fresh = [(int(i), v) for i, v in zip(sample_ids, vectors, strict=True)]
    with transaction.atomic():
        # ignore_conflicts hides which rows were new: leave out the ones already stored, then count.
        stored = set(Embedding.objects.filter(encoder=record, sample_id__in=[i for i, _ in fresh])
                     .values_list("sample_id", flat=True))
        created = Embedding.objects.bulk_create(
            [Embedding(sample_id=i, encoder=record, vector=v.tobytes()) for i, v in fresh if i not in stored],
            ignore_conflicts=True,
        )
        if not created:
            return 0
        EmbeddingSet.objects.get_or_create(dataset=dataset, encoder=record)
        # Recount rather than add: ignore_conflicts hides how many rows were really new.
        count = Embedding.objects.filter(encoder=record, sample__dataset=dataset).count()
        EmbeddingSet.objects.filter(dataset=dataset, encoder=record).update(count=count, version=F("version") + 1)
    return len(created)


def _load(dataset_id, record, expected):
    ids = np.empty(expected, dtype=np.int64)
    splits = np.empty(expected, dtype=np.int8)
    vectors = np.empty((expected, record.dim), dtype=VECTOR_DTYPE)
    rows = (Embedding.objects.filter(encoder=record, sample__dataset_id=dataset_id).order_by("sample_id")
            .values_list("sample_id", "sample__split", "vector").iterator(chunk_size=20_000))
    n = 0
    for sample_id, split, vector in rows:
        if n == len(ids):  # rows arrived since the count was read
            ids, splits = np.resize(ids, 2 * n + 1), np.resize(splits, 2 * n + 1)
            vectors = np.resize(vectors, (2 * n + 1, record.dim))
        ids[n], splits[n] = sample_id, SPLIT_CODES[split]
        vectors[n] = np.frombuffer(vector, dtype=VECTOR_DTYPE)
        n += 1
    return ids[:n].copy(), splits[:n].copy(), np.ascontiguousarray(vectors[:n])


def _splits_of(dataset_id, sample_ids):
    """Split codes of `sample_ids` (ascending) as they are now."""
    rows = Sample.objects.filter(dataset_id=dataset_id).order_by("id").values_list("id", "split")
    ids, splits = [], []
    for sample_id, split in rows.iterator(chunk_size=50_000):
        ids.append(sample_id)
        splits.append(SPLIT_CODES[split])
    where, _ = locate(np.array(ids, dtype=np.int64), sample_ids)  # every matrix row is a sample of the dataset
    return np.array(splits, dtype=np.int8)[where]


def matrix_get(*, dataset, record):
    """The cached matrix of a dataset's vectors under an encoder; reloaded when vectors were added, and only its
    split codes when samples moved between splits (the vectors stay)."""
    state = (EmbeddingSet.objects.filter(dataset=dataset, encoder=record)
             .values_list("version", "count", "dataset__samples_version").first())
    if state is None or state[1] == 0:
        raise Conflict(
            f"Dataset {dataset.id} has no embeddings for encoder {record.identity}. "
            f"Compute them first: POST /api/datasets/{dataset.id}/embeddings/.",
            code="embeddings_missing",
        )
    vectors_version, count, samples_version = state
    key = (dataset.id, record.id)

    def load():
        held = _matrices.peek(key)
        if held is not None and held[0][0] == vectors_version:
            stale = held[1]
            return Matrix(sample_ids=stale.sample_ids, splits=_splits_of(dataset.id, stale.sample_ids),
                          vectors=stale.vectors, version=vectors_version)
        ids, splits, vectors = _load(dataset.id, record, count)
        return Matrix(sample_ids=ids, splits=splits, vectors=torch.from_numpy(vectors), version=vectors_version)

    pinned = [(a, e) for a, e in ResourceAllocation.objects.values_list("dataset_id", "encoder_id")]
    return _matrices.get(key, (vectors_version, samples_version), load, keep=pinned)


def cache_held():
    return _matrices.held()


def cache_drop(*, dataset_id, encoder_id):
    _matrices.drop((dataset_id, encoder_id))


def allocation_touch(*, dataset, record):
    """Mark an allocation used (at most once a minute), so idle release does not take a busy one."""
    cutoff = timezone.now() - timezone.timedelta(seconds=60)
    ResourceAllocation.objects.filter(dataset=dataset, encoder=record, last_used_at__lt=cutoff).update(
        last_used_at=timezone.now()
    )
