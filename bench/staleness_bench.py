#!/usr/bin/env python
"""The staleness check of training sets and models (the `stale` / `stale_reasons` of every list and detail) on the
500,000-sample dataset of bench/samples_list_latency.py, next to baselines measured in the same run (no assertions
on times).

A training set and a model list each say whether their products still match their inputs; part of that is a
sha256 of every split's ground truth (`ground_truth_digest`), which reads every label of the split. It is cached per
process until the dataset's next label event, sample change or class change.

1. `GET training-sets/` and `GET models/` (one ready training set, `--models` models on it) in-process through DRF's
   APIClient: warm (nothing changed since the last request); after a label write (one dev label toggled, so the
   digests are read again: the cold path); and with the digest cache cleared before each request and no write.
   Run at a commit before the cache (the script copied in), every request is cold: that is the comparison.
2. Baselines, each alone: `GET /api/jobs/?limit=1` (the framework's fixed cost); the bare reads of the digests
   through psycopg (the same rows, ordered, into sha256), which the cold path cannot avoid.

The LF, training set and models it creates, and the label events of its toggles, are deleted at the end (the
toggles come back to the seeded value).

    .venv/bin/python bench/staleness_bench.py                    # 500,000 samples, 15 requests per case
    .venv/bin/python bench/staleness_bench.py --samples 50000 --requests 5
"""

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import samples_list_latency as samples_bench  # noqa: E402  (seeding of the shared dataset)

LF_NAME = "staleness bench: zebra"
BARE_DIGEST = """
    SELECT a.sample_id, a.label_class_id, a.value FROM annotations_annotation a
    JOIN datasets_sample s ON s.id = a.sample_id
    WHERE s.dataset_id = %s AND s.split = %s AND a.value IN ('PRESENT', 'ABSENT')
    ORDER BY a.sample_id, a.label_class_id"""


def products(dataset, user, model_count):
    """One ready training set of one keyword LF, and `model_count` models on it. Models need vectors, which this
    dataset lacks, so they are rows with their inputs recorded (their staleness reads what a trained one's does)."""
    from imagestudio.datasets.models import LabelClass
    from imagestudio.labeling.models import LabelingFunction
    from imagestudio.labeling.services import lf_create
    from imagestudio.training.models import FastModel
    from imagestudio.training.selectors import model_inputs
    from imagestudio.training.services import training_set_start

    label_class = LabelClass.objects.get(dataset=dataset, name=_common.LIST_GT_CLASS)
    if not LabelingFunction.objects.filter(dataset=dataset, name=LF_NAME).exists():
        lf_create(dataset=dataset, user=user, label_class=label_class, name=LF_NAME, type="pattern",
                  config={"field": "caption", "builder": "keyword", "words": [_common.LIST_RARE_WORD]}, high=1)
    started = time.perf_counter()
    training_set, _ = training_set_start(dataset=dataset, user=user)
    training_set.refresh_from_db()
    print(f"training set {training_set.id} ready={training_set.ready} ({time.perf_counter() - started:.1f} s)")
    first = FastModel.objects.filter(dataset=dataset).count() + 1
    for version in range(first, first + model_count):
        model = FastModel.objects.create(
            dataset=dataset, version=version, label_source=FastModel.LabelSource.TRAINING_SET,
            training_set=training_set, created_by=user, ready=True,
            params={"classes": [label_class.id], "seed": 0, "encoder": "bench", "space": "visual"})
        model.params["inputs"] = model_inputs(model=model, vectors_identity="bench", vectors_version=0)
        model.save(update_fields=["params"])
    return training_set, label_class


def clean_up(dataset, training_set, toggled, events_before):
    from imagestudio.annotations.models import AnnotationEvent
    from imagestudio.labeling.models import LabelingFunction
    from imagestudio.training.models import FastModel

    FastModel.objects.filter(training_set=training_set).delete()
    training_set.delete()  # its one LF is the bench's own
    LabelingFunction.objects.filter(dataset=dataset, name=LF_NAME).delete()
    events = AnnotationEvent.objects.filter(dataset=dataset, sample_id=toggled.id, id__gt=events_before).delete()[0]
    print(f"clean-up: removed the bench's LF, training set and models, {events} label events")


def timed(call, requests, before=None):
    seconds = []
    for _ in range(requests):
        if before is not None:
            before()
        started = time.perf_counter()
        response = call()
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
    return seconds


def bare_digests(dataset_id, splits):
    with _common.psycopg_connect() as conn, conn.cursor() as cursor:
        for split in splits:
            digest = hashlib.sha256()
            cursor.execute(BARE_DIGEST, [dataset_id, split])
            for sample_id, class_id, value in cursor:
                digest.update(f"{sample_id},{class_id},{value};".encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000, help="samples in the dataset (default 500000)")
    parser.add_argument("--requests", type=int, default=15, help="requests per case (default 15)")
    parser.add_argument("--models", type=int, default=3, help="models listed (default 3)")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()
    _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    from django.db.models import Max
    from rest_framework.test import APIClient

    from imagestudio.annotations import selectors as annotation_selectors
    from imagestudio.annotations.models import Annotation, AnnotationEvent
    from imagestudio.annotations.services import annotation_set

    _common.print_environment("staleness bench")
    dataset = samples_bench.seeded_dataset(args.samples)
    if dataset is None:
        print(f"seeding {args.samples:,} samples")
        dataset = samples_bench.seed(args.samples)
        samples_bench.vacuum_analyze()
    user = dataset.created_by
    training_set, label_class = products(dataset, user, args.models)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {_common.bench_token(user)}")
    toggled = Annotation.objects.filter(label_class=label_class, sample__split="dev").select_related("sample").first()
    seeded_value = toggled.value
    events_before = AnnotationEvent.objects.aggregate(last=Max("id"))["last"] or 0  # the bench's own go at the end
    other_value = "ABSENT" if seeded_value == "PRESENT" else "PRESENT"

    def label(value):
        annotation_set(dataset=dataset, user=user, sample=toggled.sample, label_class=label_class, value=value)

    def toggle():
        toggled.value = other_value if toggled.value == seeded_value else seeded_value
        label(toggled.value)

    cases = {}
    try:
        for name, url in (("training-sets", f"/api/datasets/{dataset.id}/training-sets/"),
                          ("models", f"/api/datasets/{dataset.id}/models/")):
            listed = client.get(url).json()
            assert listed["count"] >= 1, listed
            stale = sorted({reason for row in listed["results"] for reason in row.get("stale_reasons", [])})
            cases[f"GET {name}/ warm"] = (timed(lambda u=url: client.get(u), args.requests), f"stale reasons: {stale or None}")
            cases[f"GET {name}/ after a label write"] = (timed(lambda u=url: client.get(u), args.requests, toggle), "")
            label(seeded_value)  # as seeded again: the next warm case is of current products
            toggled.value = seeded_value
            if hasattr(annotation_selectors, "_digests"):  # absent before the cache (run at an older commit)
                cases[f"GET {name}/ digest cache cleared"] = (
                    timed(lambda u=url: client.get(u), args.requests, annotation_selectors._digests.clear), "")
        cases["GET /api/jobs/?limit=1 (fixed cost)"] = (timed(lambda: client.get("/api/jobs/?limit=1"),
                                                              args.requests), "")
        splits = sorted({"dev", "valid", "test", "train"})

        def bare():
            class Done:
                status_code = 200
            bare_digests(dataset.id, splits)
            return Done

        cases["bare digests of every split (psycopg)"] = (timed(bare, args.requests), "")
    finally:
        clean_up(dataset, training_set, toggled.sample, events_before)
    print(f"\n== staleness in list responses: {args.samples:,} samples, {args.requests} requests per case")
    header = f"{'case':<48} {'p50 ms':>9} {'p95 ms':>9}  note"
    print(header)
    print("-" * len(header))
    for name, (seconds, note) in cases.items():
        print(f"{name:<48} {statistics.median(seconds) * 1000:9.1f} "
              f"{_common.percentile(seconds, 95) * 1000:9.1f}  {note}")
    _common.print_load()


if __name__ == "__main__":
    main()
