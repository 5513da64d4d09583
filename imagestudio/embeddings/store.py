"""Where vectors live: rows in the database (float16, durable, shared by web and workers on every machine, the
source of truth), and for scanning one memory-mapped bfloat16 matrix per (dataset, encoder, vectors generation)
in files on each host (vector_files), written from the database when missing and cached per process.
"""

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import replace

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection, transaction
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
    config_fingerprint,
    encoder_spaces,
    load_encoder,
    require_local_weights,
    space_dim,
    space_identity,
    stored_space,
)
from .matrix import Matrix
from .models import Embedding, EmbeddingSet, EncoderRecord, ResourceAllocation
from .vector_files import MatrixWriter, matrix_directory, matrix_open, matrix_prune

VECTOR_DTYPE = np.float16  # the database's format
_TOUCH_SECONDS = 60
_LOAD_BLOCK = 65_536  # vectors per query when writing a matrix's files (64 MiB at 512 dimensions)

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


def _record(encoder, space, fingerprint):
    record, _ = EncoderRecord.objects.get_or_create(
        identity=space_identity(encoder, space),
        defaults={"key": encoder.key, "dim": space_dim(encoder, space), "space": space,
                  "fingerprint": fingerprint or ""})
    if fingerprint and record.fingerprint != fingerprint:  # the same weights reached through another config
        EncoderRecord.objects.filter(fingerprint=fingerprint).exclude(pk=record.pk).update(fingerprint="")
        EncoderRecord.objects.filter(pk=record.pk).update(fingerprint=fingerprint)
    return record


def _stored(key, space):
    try:
        return stored_space(key, space)
    except EncoderUnavailable as exc:
        raise ValidationFailed(str(exc), field="space") from None


def encoder_for(key=None, space="joint"):
    """(loaded encoder, the EncoderRecord of the vectors that serve `space`). ValidationFailed when the encoder
    cannot load (its weights not on local disk included: web requests never download) or the space is unknown."""
    encoder = _loaded(key, allow_download=False)
    return encoder, _record(encoder, _stored(encoder.key, space), config_fingerprint(encoder_config(key)))


def record_for(key=None, space="joint"):
    """The EncoderRecord of the vectors that serve `space`, without loading the encoder when a process already
    recorded its weights' fingerprint (a web process answering image and model queries never holds the model)."""
    config = encoder_config(key)
    fingerprint = config_fingerprint(config)
    if fingerprint:
        record = EncoderRecord.objects.filter(fingerprint=fingerprint, space=_stored(config.key, space)).first()
        if record is not None:
            return record
    return encoder_for(key, space)[1]


def encoder_records(key=None, *, allow_download=False):
    """(loaded encoder, {space: EncoderRecord}) for every space the encoder stores; pretrained weights are
    downloaded only when `allow_download` (the embeddings job)."""
    encoder = _loaded(key, allow_download)
    fingerprint = config_fingerprint(encoder_config(key))
    return encoder, {space: _record(encoder, space, fingerprint) for space in encoder.spaces}


def records_for(key=None):
    """{space: EncoderRecord} for every space the encoder stores, without loading it when its fingerprint is known
    (see record_for)."""
    config = encoder_config(key)
    fingerprint = config_fingerprint(config)
    spaces = encoder_spaces(config.key)
    if fingerprint:
        known = {r.space: r for r in EncoderRecord.objects.filter(fingerprint=fingerprint, space__in=spaces)}
        if len(known) == len(spaces):
            return known
    return encoder_records(key)[1]


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
        EmbeddingSet.objects.filter(dataset=dataset, encoder=record).update(count=count, version=F("version") + 1,
                                                                            generation=uuid.uuid4(),
                                                                            updated_at=timezone.now())
    return len(created)


def _split_code_sql(column):
    return "CASE " + column + " " + " ".join(f"WHEN '{name}' THEN {code}" for name, code in SPLIT_CODES.items()) + \
        " END"


@contextlib.contextmanager
def _binary_cursor():
    """A psycopg cursor on Django's connection (its transaction) with server-side binding, so results can come
    in binary: bytea as raw bytes, not hex text twice their size to decode."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _ids_and_splits(dataset_id, record):
    """(ids ascending, split codes) of the samples with a vector under `record`, in one row of two byte strings."""
    if connection.vendor != "postgresql":
        rows = (Embedding.objects.filter(encoder=record, sample__dataset_id=dataset_id).order_by("sample_id")
                .values_list("sample_id", "sample__split"))
        pairs = list(rows.iterator(chunk_size=20_000))
        return (np.array([i for i, _ in pairs], dtype=np.int64),
                np.array([SPLIT_CODES[split] for _, split in pairs], dtype=np.int8))
    with _binary_cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(int8send(s.id), ''::bytea ORDER BY s.id), "  # noqa: S608 (constants only)
            f"string_agg(set_byte('\\x00'::bytea, 0, {_split_code_sql('s.split')}), ''::bytea ORDER BY s.id) "
            f"FROM {Embedding._meta.db_table} e JOIN {Sample._meta.db_table} s ON s.id = e.sample_id "
            "WHERE e.encoder_id = %s AND s.dataset_id = %s", [record.id, dataset_id], binary=True)
        ids, codes = cursor.fetchone()
    return (np.frombuffer(bytes(ids or b""), dtype=">i8").astype(np.int64),
            np.frombuffer(bytes(codes or b""), dtype=np.int8).copy())


def _vector_blocks(dataset_id, record, ids):
    """The vectors of `ids` (ascending), block by block, as float16 arrays."""
    block = _LOAD_BLOCK
    if connection.vendor != "postgresql":
        for start in range(0, len(ids), block):
            chunk = ids[start:start + block].tolist()
            stored = dict(Embedding.objects.filter(encoder=record, sample_id__in=chunk)
                          .values_list("sample_id", "vector"))
            yield np.stack([np.frombuffer(stored[i], dtype=VECTOR_DTYPE) for i in chunk])
        return
    with _binary_cursor() as cursor:
        for start in range(0, len(ids), block):
            low, high = int(ids[start]), int(ids[min(start + block, len(ids)) - 1])
            cursor.execute(
                "SELECT e.vector "  # noqa: S608 (names only)
                f"FROM {Embedding._meta.db_table} e JOIN {Sample._meta.db_table} s ON s.id = e.sample_id "
                "WHERE e.encoder_id = %s AND e.sample_id BETWEEN %s AND %s AND s.dataset_id = %s "
                "ORDER BY e.sample_id", [record.id, low, high, dataset_id], binary=True)
            rows = cursor.fetchall()
            data, count = b"".join(row[0] for row in rows), len(rows)
            if count != min(block, len(ids) - start):  # samples deleted meanwhile (outside a snapshot only)
                raise Conflict("The dataset's samples changed while its vectors were loading; retry.",
                               code="vectors_changed")
            yield np.frombuffer(bytes(data), dtype=VECTOR_DTYPE).reshape(count, record.dim)


def _build(dataset_id, record, directory):
    """Write the matrix directory from the database, in one snapshot (the version in its name is the snapshot's);
    returns the split codes read with it (ascending id)."""
    outer = connection.in_atomic_block  # inside a caller's transaction the isolation level is already set
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        ids, codes = _ids_and_splits(dataset_id, record)
        writer = MatrixWriter(directory, ids, codes, record.dim)
        try:
            for vectors in _vector_blocks(dataset_id, record, ids):
                writer.put(vectors)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return ids, codes


def _splits_of(dataset_id, sample_ids):
    """Split codes of `sample_ids` (ascending, all in the dataset) as they are now."""
    if connection.vendor == "postgresql":
        with _binary_cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(int8send(id), ''::bytea ORDER BY id), "  # noqa: S608 (constants only)
                f"string_agg(set_byte('\\x00'::bytea, 0, {_split_code_sql('split')}), ''::bytea ORDER BY id) "
                f"FROM {Sample._meta.db_table} WHERE dataset_id = %s", [dataset_id], binary=True)
            ids, codes = cursor.fetchone()
        ids = np.frombuffer(bytes(ids or b""), dtype=">i8").astype(np.int64)
        codes = np.frombuffer(bytes(codes or b""), dtype=np.int8)
    else:
        rows = list(Sample.objects.filter(dataset_id=dataset_id).order_by("id").values_list("id", "split")
                    .iterator(chunk_size=50_000))
        ids = np.array([i for i, _ in rows], dtype=np.int64)
        codes = np.array([SPLIT_CODES[split] for _, split in rows], dtype=np.int8)
    where, _ = locate(ids, sample_ids)
    return codes[where]


def _matrix_at(dataset_id, record, generation, version, count):
    """The matrix of this vectors generation: mapped from its directory, written there first when missing."""
    directory = matrix_directory(settings.VECTOR_ROOT, dataset_id, record.id, f"{version}-{generation.hex[:16]}")
    opened = matrix_open(directory)
    codes = None
    if opened is None or len(opened[0]) != count:
        shutil.rmtree(directory, ignore_errors=True)  # damaged or incomplete (a crash): rebuild
        _, codes = _build(dataset_id, record, directory)
        matrix_prune(settings.VECTOR_ROOT, dataset_id, record.id, keep=directory.name)
        opened = matrix_open(directory)
    sample_ids, order, vectors = opened
    if codes is None:
        codes = _splits_of(dataset_id, sample_ids)
    return Matrix(sample_ids=sample_ids, splits=codes, vectors=vectors, dim=record.dim, version=version,
                  rows=order)


def matrix_get(*, dataset, record):
    """The matrix of a dataset's vectors under an encoder (memory-mapped from its files, see vector_files);
    reloaded when vectors were added, and only its split codes when samples changed (the vectors stay)."""
    state = (EmbeddingSet.objects.filter(dataset=dataset, encoder=record)
             .values_list("version", "count", "generation", "dataset__samples_version").first())
    if state is None or state[1] == 0:
        raise Conflict(
            f"Dataset {dataset.id} has no embeddings for encoder {record.identity}. "
            f"Compute them first: POST /api/datasets/{dataset.id}/embeddings/.",
            code="embeddings_missing",
        )
    vectors_version, count, generation, samples_version = state
    key = (dataset.id, record.id)

    def load():
        held = _matrices.peek(key)
        if held is not None and held[0][0] == vectors_version:
            stale = held[1]
            return replace(stale, splits=_splits_of(dataset.id, stale.sample_ids))
        return _matrix_at(dataset.id, record, generation, vectors_version, count)

    pinned = [(a, e) for a, e in ResourceAllocation.objects.values_list("dataset_id", "encoder_id")]
    return _matrices.get(key, (vectors_version, samples_version), load, keep=pinned)


def cache_held():
    return _matrices.held()


def cache_drop(*, dataset_id, encoder_id):
    _matrices.drop((dataset_id, encoder_id))


def matrix_files_remove(*, dataset_id, encoder_id):
    """Remove a matrix's files (its vectors are gone from the database)."""
    matrix_prune(settings.VECTOR_ROOT, dataset_id, encoder_id)


_touched = {}  # (dataset id, encoder id) -> when this process last marked the allocation used


def allocation_touch(*, dataset, record):
    """Mark an allocation used (at most once a minute, and without a query in between), so idle release does not
    take a busy one."""
    key, now = (dataset.id, record.id), time.monotonic()
    if now - _touched.get(key, -_TOUCH_SECONDS) < _TOUCH_SECONDS:
        return
    _touched[key] = now
    cutoff = timezone.now() - timezone.timedelta(seconds=_TOUCH_SECONDS)
    ResourceAllocation.objects.filter(dataset=dataset, encoder=record, last_used_at__lt=cutoff).update(
        last_used_at=timezone.now()
    )
