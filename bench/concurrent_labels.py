#!/usr/bin/env python
"""Concurrent writers of single labels on one dataset, against the same writes from one thread, in the same run
(no assertions on times).

Every label write ends its transaction by bumping the dataset's `labels_version` under the dataset row's lock
(the ground-truth caches follow commit order), so writers of one dataset queue for that row from the bump to their
commit. This measures what that costs: --threads threads, each calling `annotations.services.annotation_set` on
its own samples (its own database connection), every call a change (PRESENT / ABSENT alternately) of class `dog`,
against one thread doing the same number of calls on the same samples. Each side runs alone, the one-thread side
before and after the threaded one (their mean is the baseline). Run it at another commit (copy it in) to compare.

Reuses (or seeds) the 500,000-sample dataset of bench/samples_list_latency.py; the `dog` labels it writes, their
events and counters' changes are removed at the end (counters rebuilt).

    .venv/bin/python bench/concurrent_labels.py                     # 4 threads x 100 writes
    .venv/bin/python bench/concurrent_labels.py --threads 8 --writes 50
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import samples_list_latency as samples_bench  # noqa: E402  (seeding of the shared dataset)

CLASS = "dog"


def write_labels(dataset, user, label_class, samples, rounds):
    """`rounds` passes over `samples`, each write a change; its own connection (closed at the end)."""
    from django.db import connections

    from imagestudio.annotations.services import annotation_set

    seconds = []
    try:
        for round_index in range(rounds):
            value = "PRESENT" if round_index % 2 == 0 else "ABSENT"
            for sample in samples:
                started = time.perf_counter()
                annotation_set(dataset=dataset, user=user, sample=sample, label_class=label_class, value=value)
                seconds.append(time.perf_counter() - started)
    finally:
        connections.close_all()
    return seconds


def threaded(dataset, user, label_class, groups, rounds):
    results = [None] * len(groups)
    barrier = threading.Barrier(len(groups))

    def run(index):
        barrier.wait()
        results[index] = write_labels(dataset, user, label_class, groups[index], rounds)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(groups))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, [s for result in results for s in result]


def sequential(dataset, user, label_class, groups, rounds):
    started = time.perf_counter()
    seconds = write_labels(dataset, user, label_class, [s for group in groups for s in group], rounds)
    return time.perf_counter() - started, seconds


def clean_up(dataset, label_class, sample_ids):
    from imagestudio.annotations.models import Annotation, AnnotationEvent
    from imagestudio.annotations.services import counts_rebuild

    Annotation.objects.filter(label_class=label_class, sample_id__in=sample_ids).delete()
    AnnotationEvent.objects.filter(label_class=label_class, sample_id__in=sample_ids).delete()
    counts_rebuild(dataset=dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000, help="samples in the dataset (default 500000)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument("--writes", type=int, default=100, help="label writes per writer (default 100)")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()
    _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    from imagestudio.datasets.models import LabelClass, Sample

    _common.print_environment("concurrent labels bench", {"writers": f"{args.threads} x {args.writes} writes"})
    dataset = samples_bench.seeded_dataset(args.samples)
    if dataset is None:
        print(f"seeding {args.samples:,} samples")
        dataset = samples_bench.seed(args.samples)
        samples_bench.vacuum_analyze()
    user, label_class = dataset.created_by, LabelClass.objects.get(dataset=dataset, name=CLASS)
    per_writer = 10  # samples per writer; each is written writes / 10 times
    rounds = max(1, args.writes // per_writer)
    samples = list(Sample.objects.filter(dataset=dataset).order_by("id")[:args.threads * per_writer])
    groups = [samples[i * per_writer:(i + 1) * per_writer] for i in range(args.threads)]
    cases = {}
    try:
        write_labels(dataset, user, label_class, samples, 1)  # untimed: connections, imports, the labels' rows
        cases["one thread, before"] = sequential(dataset, user, label_class, groups, rounds)
        _common.print_load()
        cases[f"{args.threads} threads"] = threaded(dataset, user, label_class, groups, rounds)
        _common.print_load()
        cases["one thread, after"] = sequential(dataset, user, label_class, groups, rounds)
        _common.print_load()
    finally:
        clean_up(dataset, label_class, [s.id for s in samples])
    writes = args.threads * per_writer * rounds
    baseline = statistics.mean([cases["one thread, before"][0], cases["one thread, after"][0]])
    print(f"\n== {writes} single-label writes on one dataset ({CLASS}, each a change)")
    header = f"{'case':<22} {'wall s':>8} {'writes/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'x one thread':>13}"
    print(header)
    print("-" * len(header))
    for name, (wall, seconds) in cases.items():
        print(f"{name:<22} {wall:8.2f} {writes / wall:9.1f} {statistics.median(seconds) * 1000:8.1f} "
              f"{_common.percentile(seconds, 95) * 1000:8.1f} {baseline / wall:13.2f}")
    _common.print_load()


if __name__ == "__main__":
    main()
