"""Test data built through the services, as a user's requests would build it (no rows written past them)."""

import io
import json

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from PIL import Image

from imagestudio.celery import app as celery_app
from imagestudio.datasets.filters import samples_select
from imagestudio.datasets.imports import import_start
from imagestudio.datasets.models import Sample
from imagestudio.datasets.selectors import tag_list
from imagestudio.datasets.services import tag_apply, tag_create

UPLOAD_CHUNK = 500  # files per import request (below MAX_UPLOAD_FILES)


def sample_png(index, height=10):
    """A PNG `10 + index` pixels wide (sizes and orderings follow the index), unique per index."""
    image = Image.new("RGB", (10 + index, height), ((index * 37) % 256, (index * 11) % 256, index % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _import(dataset, user, entries):
    files = [SimpleUploadedFile(f"s{index}.png", sample_png(index), content_type="image/png") for index, _ in entries]
    manifest = "\n".join(json.dumps({
        "file": f"s{index}.png", "split": spec.get("split", "train"), "external_id": f"s{index}",
        "metadata": spec.get("metadata", {}), "ground_truth": spec.get("gt", {}),
    }) for index, spec in entries)
    # The job starts on commit: inside a test's transaction, run it when the request would have committed.
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = import_start(dataset=dataset, user=user, files=files, split="train",
                           manifest=SimpleUploadedFile("manifest.jsonl", manifest.encode()))
    job.refresh_from_db()
    assert job.status == "succeeded" and job.result["created"] == len(entries), (job.status, job.error, job.result)


def make_samples(dataset, specs, *, user=None):
    """Import one image per spec (dicts with split / metadata / gt {class: value} / tags [names]) and return the
    samples in spec order. External ids are `s<index>`, counting on from the dataset's samples."""
    user = user or dataset.created_by
    first = Sample.objects.filter(dataset=dataset).count()
    entries = list(enumerate(specs, start=first))
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # the import runs here, also beside a real worker
    try:
        for start in range(0, len(entries), UPLOAD_CHUNK):
            _import(dataset, user, entries[start:start + UPLOAD_CHUNK])
    finally:
        celery_app.conf.task_always_eager = eager
    by_external_id = {s.external_id: s for s in Sample.objects.filter(dataset=dataset)}
    samples = [by_external_id[f"s{index}"] for index, _ in entries]
    tags = {tag.name: tag for tag in tag_list(dataset=dataset)}
    for name in sorted({name for spec in specs for name in spec.get("tags", [])}):
        tag = tags.get(name) or tag_create(dataset=dataset, name=name)
        chosen = [s.id for s, spec in zip(samples, specs, strict=True) if name in spec.get("tags", [])]
        tag_apply(tag=tag, samples=samples_select(dataset=dataset, sample_ids=chosen))
    dataset.refresh_from_db()
    return samples
