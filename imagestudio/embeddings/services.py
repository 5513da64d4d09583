"""Computing embeddings (a Job on the `embeddings` queue), querying them, and dedicated resources."""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone
from PIL import Image, ImageOps

from imagestudio import pipeline
from imagestudio.common.arrays import top_k
from imagestudio.common.cache import VersionedLRU
from imagestudio.common.errors import Conflict, NotFound, ValidationFailed
from imagestudio.datasets.models import SPLIT_CODES, ResampleMember, Sample
from imagestudio.jobs.services import JobCancelled, job_progress, job_record_result

from . import vector_files
from .matrix import packed_width
from .models import Embedding, EmbeddingSet, EncoderRecord, ResourceAllocation
from .selectors import resource_idle_cutoff
from .store import (
    allocation_touch,
    cache_drop,
    check_encoder_settings,
    encoder_for,
    encoder_records,
    matrix_get,
    record_for,
    records_for,
    vectors_add,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imagestudio.datasets.models import Dataset
    from imagestudio.jobs.models import Job

MAX_QUERY_TEXT = 10_000  # characters; the tokenizer truncates further and says so


# ---------------------------------------------------------------- computing


def embeddings_start(*, dataset: Dataset, user: User, encoder: str | None = None, split: str | None = None) -> Job:
    """Queue the computation of missing vectors (or return the same job already in flight)."""
    config = check_encoder_settings(encoder)
    samples = Sample.objects.filter(dataset=dataset)
    if split:
        samples = samples.filter(split=split)
    if not samples.exists():
        raise ValidationFailed(
            f"The dataset has no images{' in split ' + split if split else ''} to embed; import some first.",
            code="no_samples",
        )
    return pipeline.embeddings_enqueue(dataset=dataset, user=user, encoder_key=config.key, split=split)


def _missing(dataset, records, split):
    """Samples lacking a vector in any of the encoder's spaces (a job that died between them resumes here)."""
    samples = Sample.objects.filter(dataset=dataset)
    if split:
        samples = samples.filter(split=split)
    lacking = Q()
    for record in records:
        lacking |= ~Exists(Embedding.objects.filter(sample_id=OuterRef("pk"), encoder=record))
    return list(samples.filter(lacking).order_by("id").values_list("id", "original"))


def _decode(encoder, key):
    """Read and preprocess one stored original; returns a tensor or the reason it failed."""
    try:
        with default_storage.open(key, "rb") as stream:
            image = Image.open(io.BytesIO(stream.read()))
            image.draft("RGB", (512, 512))  # JPEG decodes at reduced scale, the encoder needs ~224 px
            return encoder.preprocess(ImageOps.exif_transpose(image))
    except Exception as exc:  # a blob gone missing or damaged since import
        return f"{type(exc).__name__}: {exc}"


def _batches(encoder, todo, batch_size, pool):
    """Yield (ids, tensor batch, failures) while the next batches decode in the background.

    Decoding runs on a thread pool one or two batches ahead of the forward pass, so the model
    rarely waits for Pillow.
    """
    import torch

    ready = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce():
        try:
            for start in range(0, len(todo), batch_size):
                if stop.is_set():
                    return
                chunk = todo[start:start + batch_size]
                decoded = list(pool.map(lambda row: _decode(encoder, row[1]), chunk))
                ids, tensors, failures = [], [], []
                for (sample_id, _), item in zip(chunk, decoded, strict=True):
                    if isinstance(item, str):
                        failures.append({"sample_id": sample_id, "reason": item})
                    else:
                        ids.append(sample_id)
                        tensors.append(item)
                ready.put((ids, torch.stack(tensors) if tensors else None, failures))
        except BaseException as exc:  # surfaced in the consumer
            ready.put(exc)
        finally:
            ready.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock the producer if it waits on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                time.sleep(0.01)


def embeddings_run(job: Job, progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """The embeddings job's body: vectors in every space of the encoder for every sample lacking one."""
    encoder, records = encoder_records(job.params.get("encoder"), allow_download=settings.CLIP_DOWNLOAD)
    run = _EmbeddingRun(job, encoder, records, _missing(job.dataset, records.values(), job.params.get("split")))
    report = progress or (lambda fraction, message: job_progress(job_id=job.id, progress=fraction, message=message))
    try:
        run.embed(report)
    except Exception as stopped:
        # Cancelled or failed: the vectors stored so far stay, the votes follow them. The refresh is asked for before
        # the result is written, as a finished job's is (a job waiting for the votes follows what a writer asked
        # for before its last write), and never raises over why the job stopped.
        if any(run.computed.values()):
            _refresh_after_stop(job)
        if isinstance(stopped, JobCancelled):
            job_record_result(job_id=job.id, result=run.result())
        raise
    if any(run.computed.values()):
        report(1.0, "writing the scan matrices")
        for record in records.values():  # so the first query of every process on this host maps them at once
            matrix_get(dataset=job.dataset, record=record)
        pipeline.after_embeddings(dataset=job.dataset, user=job.creator)
    return run.result()


def _refresh_after_stop(job):
    """The LF refresh of the vectors a stopped job stored; one that cannot be queued (the broker down) is logged,
    not raised over why the job stopped."""
    try:
        pipeline.after_embeddings(dataset=job.dataset, user=job.creator)
    except Exception:
        logger.warning("embeddings job %s stopped; the LF refresh of the vectors it stored was not queued", job.id,
                       exc_info=True)


class _EmbeddingRun:
    """What an embeddings job has done so far: vectors computed per space, images done and failed."""

    def __init__(self, job, encoder, records, todo):
        self.job, self.encoder, self.records, self.todo = job, encoder, records, todo
        self.computed, self.done, self.failed = dict.fromkeys(records, 0), 0, []
        self.started = time.monotonic()

    def embed(self, report):
        total = len(self.todo)
        with ThreadPoolExecutor(max_workers=max(1, settings.INGEST_THREADS)) as pool:
            for ids, batch, failures in _batches(self.encoder, self.todo, settings.EMBEDDING_BATCH_SIZE, pool):
                if batch is not None:
                    vectors = self.encoder.encode_image_spaces(batch)
                    for space, record in self.records.items():
                        self.computed[space] += vectors_add(dataset=self.job.dataset, record=record, sample_ids=ids,
                                                            vectors=vectors[space])
                self.failed += failures
                self.done += len(ids) + len(failures)
                rate = self.done / max(time.monotonic() - self.started, 1e-6)
                report(self.done / max(total, 1), f"{self.done}/{total} images, {rate:.1f} images/s")

    def result(self):
        elapsed, joint = time.monotonic() - self.started, self.records["joint"]
        return {
            "encoder": joint.key,
            "identity": joint.identity,
            "dim": joint.dim,
            "spaces": {space: {"identity": record.identity, "dim": record.dim, "computed": self.computed[space]}
                       for space, record in self.records.items()},
            "device": str(self.encoder.device),
            "missing_before": len(self.todo),
            "computed": self.computed["joint"],
            "failed": len(self.failed),
            "failures": self.failed[:1000],
            "seconds": round(elapsed, 3),
            "images_per_second": round(self.done / elapsed, 2) if elapsed > 0 else None,
        }


# ---------------------------------------------------------------- querying


# Text vectors depend on the encoder alone, not on stored data.
_text_vectors = VersionedLRU("text vectors", max_entries=4096, from_database=False)


def _text_vector(encoder, identity, text):
    """A text's vector, cached per process: the same query text is embedded once."""

    def load():
        vectors, truncated = encoder.encode_texts([text])
        return vectors[0], truncated[0]

    return _text_vectors.get((identity, text), 0, load)


def _crop(image, box):
    x0, y0, x1, y1 = box
    width, height = image.size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValidationFailed(
            f"The box {list(box)} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} "
            "(pixels of the oriented image).", field="box")
    return image.crop((x0, y0, x1, y1))


def default_space(*, text: str | None = None) -> str:
    """Text queries live in the joint space; image and patch queries default to the visual one."""
    return "joint" if text is not None else "visual"


def query_vector(*, dataset: Dataset, encoder: str | None = None, text: str | None = None, sample_id: int | None = None,
                 box: Sequence[int] | None = None,
                 space: str | None = None) -> tuple[np.ndarray, EncoderRecord, dict[str, Any]]:
    """The unit vector of a text, a dataset image or a crop of one in `space` (default_space when None), with
    the record of the vectors it is to be compared with, and notes (e.g. truncation)."""
    space = space or default_space(text=text)
    if text is not None and space != "joint":
        raise ValidationFailed("A text query compares with images in the joint space only.", field="space")
    record = record_for(encoder, space)  # the model itself only when a text or an image must be encoded
    notes = {"encoder": record.identity, "space": record.space}
    if text is not None:
        if not text.strip():
            raise ValidationFailed("The text is empty.", field="text")
        loaded, record = encoder_for(encoder, space)
        vector, truncated = _text_vector(loaded, record.identity, text[:MAX_QUERY_TEXT])
        notes["truncated"] = bool(truncated or len(text) > MAX_QUERY_TEXT)
        if notes["truncated"]:
            notes["message"] = f"The text was truncated to the encoder's {loaded.max_text_tokens} tokens."
        return np.array(vector), record, notes
    sample = Sample.objects.filter(dataset=dataset, pk=sample_id).first()
    if sample is None:
        raise ValidationFailed("No sample with this id in this dataset.", field="sample_id")
    if box is None:
        stored = Embedding.objects.filter(sample=sample, encoder=record).values_list("vector", flat=True).first()
        if stored is not None:
            return np.frombuffer(stored, dtype=np.float16).astype(np.float32), record, notes
    loaded, record = encoder_for(encoder, space)
    with default_storage.open(sample.original, "rb") as stream:
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(stream.read())))
    if box is not None:
        image = _crop(image, box)
    return loaded.encode_image_spaces(loaded.preprocess(image).unsqueeze(0))[record.space][0], record, notes


def scores_for(*, dataset: Dataset, record: EncoderRecord, vector: np.ndarray, split: str | None = None,
               in_sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids ascending, cosine similarities) of every embedded sample of the split (or its active resample):
    one product over the rows of that split."""
    matrix = matrix_get(dataset=dataset, record=record)
    allocation_touch(dataset=dataset, record=record)
    ids, scores = matrix.score(vector / max(float(np.linalg.norm(vector)), 1e-12), split=SPLIT_CODES[split] if split else None)
    np.clip(scores, -1.0, 1.0, out=scores)  # bfloat16 rows of unit vectors are not exactly unit: 1.0019 was seen
    if not in_sample:
        return ids, scores
    members = ResampleMember.objects.filter(resample__dataset=dataset)
    if split:
        members = members.filter(resample__split=split)
    chosen = np.isin(ids, np.fromiter(members.values_list("sample_id", flat=True), dtype=np.int64))
    return ids[chosen], scores[chosen]


def embeddings_search(*, dataset: Dataset, encoder: str | None = None, text: str | None = None,
                      sample_id: int | None = None, box: Sequence[int] | None = None, split: str | None = None,
                      in_sample: bool = False, limit: int = 50, space: str | None = None) -> dict[str, Any]:
    """The samples most similar to a text, an image or a crop, best first."""
    vector, record, notes = query_vector(dataset=dataset, encoder=encoder, text=text, sample_id=sample_id, box=box,
                                         space=space)
    ids, scores = scores_for(dataset=dataset, record=record, vector=vector, split=split, in_sample=in_sample)
    top = top_k(scores, limit)  # argpartition: sorting 500,000 scores would cost more than scoring them
    return {**notes, "searched": int(len(ids)),
            "results": [{"sample_id": int(ids[i]), "score": float(scores[i])} for i in top]}


# ---------------------------------------------------------------- dedicated resources


def resources_expire() -> None:
    """Release allocations idle longer than RESOURCE_IDLE_SECONDS (periodically, and before each allocation)."""
    cutoff = resource_idle_cutoff()
    for dataset_id, encoder_id in ResourceAllocation.objects.filter(last_used_at__lt=cutoff).values_list(
            "dataset_id", "encoder_id"):
        cache_drop(dataset_id=dataset_id, encoder_id=encoder_id)
    ResourceAllocation.objects.filter(last_used_at__lt=cutoff).delete()


def resource_allocate(*, dataset: Dataset, user: User, encoder: str | None = None) -> ResourceAllocation:
    """Pin the dataset's matrices (every space the encoder stores) in memory within the server-wide budget
    (409 when it is exhausted). Returns the joint space's allocation."""
    records = records_for(encoder)
    joint = records["joint"]
    counts = dict(EmbeddingSet.objects.filter(dataset=dataset, encoder__in=records.values(), count__gt=0)
                  .values_list("encoder_id", "count"))
    if joint.id not in counts:
        raise Conflict(f"Dataset {dataset.id} has no embeddings for {joint.identity}; compute them first "
                       f"(POST /api/datasets/{dataset.id}/embeddings/).", code="embeddings_missing")
    needed = {record: counts[record.id] * (packed_width(record.dim) * 2 + 17)  # rows, ids and order, split codes
              for record in records.values() if record.id in counts}
    resources_expire()
    with transaction.atomic():
        list(ResourceAllocation.objects.select_for_update().all())  # serialise budget decisions
        others = ResourceAllocation.objects.exclude(dataset=dataset, encoder__in=list(needed))
        in_use = others.aggregate(total=Sum("bytes"))["total"] or 0
        budget, total = settings.RESOURCE_MEMORY_BUDGET_BYTES, sum(needed.values())
        if in_use + total > budget:
            raise Conflict(f"The server's resource budget is exhausted: {in_use} of {budget} bytes are allocated "
                           f"and this dataset needs {total}. Release another allocation or wait for one to idle out.",
                           code="budget_exhausted")
        allocations = {record: ResourceAllocation.objects.update_or_create(
            dataset=dataset, encoder=record,
            defaults={"bytes": size, "created_by": user, "last_used_at": timezone.now()})[0]
            for record, size in needed.items()}
    for record in needed:  # map and read now, so the first preview is instant
        vector_files.warm(matrix_get(dataset=dataset, record=record).vectors)
    return allocations[joint]


def resource_release(*, dataset: Dataset) -> None:
    allocations = list(ResourceAllocation.objects.filter(dataset=dataset))
    if not allocations:
        raise NotFound("This dataset holds no dedicated resources.", code="not_allocated")
    for allocation in allocations:
        cache_drop(dataset_id=dataset.id, encoder_id=allocation.encoder_id)
        allocation.delete()
