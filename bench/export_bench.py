#!/usr/bin/env python
"""CSV export of 500,000 rows: rows/s and peak memory of the export job, against a bare COPY of the same
columns, same run (each side alone: the baselines before and after the export, the export in its own process).

Uses the 500,000-sample dataset of bench/samples_list_latency.py (seeding it when missing). The export:
`exports.services.export_start(kind="dataset", columns=["id", "external_id", "file_name", "split"],
fields=["caption"], ground_truth=True)` in a fresh subprocess (the job runs eagerly inside it, as in a
worker): wall time, rows/s, and the subprocess's peak RSS (VmHWM from /proc; ru_maxrss too). Baselines in
the same run, before and after the export: a bare psycopg `COPY (SELECT id, external_id, file_name, split,
metadata->>'caption', <one ground-truth column per class> FROM datasets_sample LEFT JOIN annotations ... WHERE
dataset_id = ... GROUP BY id ORDER BY id) TO STDOUT WITH CSV` into a file (rows/s: the baseline, exactly the
export's columns), the same COPY without the ground-truth columns (for information), and the peak RSS of a
process that only sets Django up (the floor). The export's file, its row and its job are deleted afterwards.
Targets: rows/s >= 0.5 x the bare COPY's; peak memory <= 1 GB.

    .venv/bin/python bench/export_bench.py
    .venv/bin/python bench/export_bench.py --profile     # cProfile of the export job (in the subprocess)
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_PEAK_BYTES = 10**9
TARGET_RATE_RATIO = 0.5  # the export's rows/s over a bare COPY's writing the same columns
SAMPLES = 500_000
USERNAME = "bench-export"
COLUMNS = ["id", "external_id", "file_name", "split"]
FIELDS = ["caption"]


def _memory():
    rss, hwm = _common.proc_memory_kib(os.getpid())
    return {"rss_kib": rss, "hwm_kib": hwm, "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


# ---------------------------------------------------------------- children (fresh processes)


def child_floor(with_tasks):
    """Django set up and one query: the memory floor of any process; with_tasks: plus the task modules a
    worker imports at start (they import the services, numpy, torch, ...)."""
    import django

    _common.configure_environment()
    django.setup()
    from imagestudio.datasets.models import Dataset

    Dataset.objects.exists()
    if with_tasks:
        import workers.tasks.embeddings  # noqa: F401
        import workers.tasks.exports  # noqa: F401
        import workers.tasks.training  # noqa: F401
    print(json.dumps({**_memory(), "torch_loaded": "torch" in sys.modules}))


def child_export(dataset_id, profile):
    import django

    _common.configure_environment()
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.storage import default_storage

    from imagestudio.datasets.models import Dataset
    from imagestudio.exports.models import Export
    from imagestudio.exports.services import export_start
    from imagestudio.jobs.models import Job

    dataset = Dataset.objects.get(pk=dataset_id)
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    before = _memory()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    export = export_start(dataset=dataset, user=user, kind="dataset", columns=COLUMNS, fields=FIELDS,
                          ground_truth=True)
    wall = time.perf_counter() - started
    load = os.getloadavg()[0]
    if profiler:
        profiler.disable()
    after = _memory()
    export.refresh_from_db()
    job = Job.objects.get(pk=export.job_id)
    out = {"wall": wall, "load": load, "before": before, "after": after, "status": job.status, "error": job.error,
           "result": job.result, "rows": export.rows, "bytes": export.bytes, "ready": export.ready}
    try:
        if export.file:
            with default_storage.open(export.file, "rb") as f:
                head = f.read(4096).decode("utf-8", "replace").splitlines()
                out["head"] = head[:3]
                lines = 0
                f.seek(0)
                for _ in f:
                    lines += 1
                out["lines"] = lines
    finally:
        if export.file:
            default_storage.delete(export.file)
        Export.objects.filter(pk=export.pk).delete()
        Job.objects.filter(pk=job.pk).delete()
    if profiler:
        import io
        import pstats

        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(20)
        out["profile_tottime"] = stream.getvalue()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
        out["profile_cumulative"] = stream.getvalue()
    print("RESULT " + json.dumps(out))


def run_child(args, env, timeout=900):
    command = [sys.executable, __file__, *args]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    line = [x for x in completed.stdout.splitlines() if x.startswith("RESULT ") or x.startswith("{")][-1]
    return json.loads(line.removeprefix("RESULT "))


# ---------------------------------------------------------------- baseline


def bare_copy(dataset, with_ground_truth=False):
    """COPY ... TO STDOUT WITH CSV into a temporary file; (seconds, rows, bytes)."""
    from imagestudio.datasets.models import LabelClass

    select = "s.id, s.external_id, s.file_name, s.split, s.metadata->>'caption'"
    params, join, group = [], "", ""
    if with_ground_truth:  # one column per class: a LEFT JOIN pivoted by GROUP BY
        for label_class in LabelClass.objects.filter(dataset=dataset).order_by("id"):
            select += ", max(a.value) FILTER (WHERE a.label_class_id = %s)"
            params.append(label_class.id)
        join = " LEFT JOIN annotations_annotation a ON a.sample_id = s.id AND a.value IN ('PRESENT', 'ABSENT')"
        group = " GROUP BY s.id"
    sql = (f"COPY (SELECT {select} FROM datasets_sample s{join} WHERE s.dataset_id = %s{group} ORDER BY s.id) "
           "TO STDOUT WITH CSV")
    with _common.psycopg_connect() as conn, tempfile.NamedTemporaryFile("wb", suffix=".csv") as handle:
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(sql, [*params, dataset.id]) as copy:
            for data in copy:
                handle.write(data)
        handle.flush()
        seconds = time.perf_counter() - started
        size = os.path.getsize(handle.name)
        with open(handle.name, "rb") as f:
            rows = sum(1 for _ in f)
    return seconds, rows, size, os.getloadavg()[0]


def lookup_diagnostic(dataset, chunks=20):
    """Where the job's time goes, piece by piece, in this process: the ORM row stream the job iterates
    (whole dataset, no ground truth), and the per-chunk ground-truth query as _write_chunk runs it
    (`sample_id__in` a list of CHUNK ids) against the same rows fetched by id range (2 bounds + the class ids),
    on `chunks` chunks spread over the dataset, extrapolated to all chunks."""
    import numpy as np

    from imagestudio.annotations.models import LABEL_VALUES, Annotation
    from imagestudio.datasets.models import Sample
    from imagestudio.exports.services import CHUNK

    samples = Sample.objects.filter(dataset=dataset).order_by("id")
    started = time.perf_counter()
    ids = []
    for row in samples.values_list("id", *COLUMNS[1:], *(f"metadata__{f}" for f in FIELDS)).iterator(chunk_size=CHUNK):
        ids.append(row[0])
    stream_s = time.perf_counter() - started
    ids = np.array(ids, dtype=np.int64)
    class_ids = list(dataset.classes.values_list("id", flat=True))
    starts = np.linspace(0, len(ids) - CHUNK, chunks).astype(int)
    in_s = range_s = 0.0
    same = True
    for start in starts:
        chunk = ids[start:start + CHUNK]
        started = time.perf_counter()
        by_in = {(s, c): v for s, c, v in Annotation.objects.filter(
            sample_id__in=chunk.tolist(), value__in=LABEL_VALUES).values_list("sample_id", "label_class_id", "value")}
        in_s += time.perf_counter() - started
        started = time.perf_counter()
        by_range = {(s, c): v for s, c, v in Annotation.objects.filter(
            label_class_id__in=class_ids, sample_id__gte=int(chunk[0]), sample_id__lte=int(chunk[-1]),
            value__in=LABEL_VALUES).values_list("sample_id", "label_class_id", "value")}
        range_s += time.perf_counter() - started
        same &= by_in == by_range  # every sample of the id range is in the chunk here (one dataset, all splits)
    scale = len(ids) / CHUNK / chunks
    return {"stream_s": stream_s, "in_s": in_s * scale, "range_s": range_s * scale, "same": same, "chunks": chunks}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--profile", action="store_true", help="cProfile of the export job (in the subprocess)")
    parser.add_argument("--child-floor", choices=("django", "tasks"), help=argparse.SUPPRESS)
    parser.add_argument("--child-export", type=int, metavar="DATASET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_floor:
        return child_floor(args.child_floor == "tasks")
    if args.child_export:
        return child_export(args.child_export, args.profile)

    env = _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    import samples_list_latency as samples_bench
    from django.db import connection

    from imagestudio.exports.services import CHUNK

    _common.print_environment("CSV export vs bare COPY", {"chunk": f"{CHUNK} rows (exports.services.CHUNK)"})
    dataset = samples_bench.seeded_dataset(SAMPLES)
    if dataset is None:
        print(f"seeding the {SAMPLES:,}-sample dataset of bench/samples_list_latency.py")
        dataset = samples_bench.seed(SAMPLES)
        samples_bench.vacuum_analyze()
    classes = list(dataset.classes.order_by("id").values_list("name", flat=True))
    print(f"dataset     {dataset.id} ({SAMPLES:,} samples), classes {', '.join(classes)}")
    connection.close()

    bare_copy(dataset, with_ground_truth=True)  # warm-up: the tables and their indexes into the page cache
    same, fewer = "bare COPY, the same columns", "bare COPY without the ground-truth columns (info)"
    baselines = {same: [], fewer: []}
    for name, gt in ((same, True), (fewer, False)):
        baselines[name].append(bare_copy(dataset, with_ground_truth=gt))
    connection.close()
    floor = run_child(["--child-floor", "django"], env)
    floor_tasks = run_child(["--child-floor", "tasks"], env)
    export = run_child(["--child-export", str(dataset.id), *(["--profile"] if args.profile else [])], env)
    for name, gt in ((same, True), (fewer, False)):
        baselines[name].append(bare_copy(dataset, with_ground_truth=gt))
    connection.close()
    if export["status"].lower() != "succeeded" or not export["ready"]:
        raise SystemExit(f"the export job ended {export['status']}: {export['error']}")

    rows = export["rows"]
    bare_rate = sum(r for _, r, _, _ in baselines[same]) / sum(s for s, _, _, _ in baselines[same])
    print(f"\n== CSV export of {rows:,} rows (columns {', '.join(COLUMNS)}, field caption, ground truth of "
          f"{len(classes)} classes)")
    header = f"{'':<52} {'seconds':>8} {'rows/s':>10} {'x bare':>7} {'MiB':>6}  load"
    print(header + "\n" + "-" * len(header))
    for name, runs in baselines.items():
        for i, (seconds, lines, size, load) in enumerate(runs, 1):
            print(f"{f'{name} #{i}':<52} {seconds:8.2f} {lines / seconds:10.0f} {lines / seconds / bare_rate:7.2f} "
                  f"{size / 2**20:6.1f}  {load:.2f}")
    job_rate = export["result"].get("rows_per_second") or 0
    verdict = "met" if job_rate / bare_rate >= TARGET_RATE_RATIO else "MISSED"
    print(f"{'export job (its own rows_per_second)':<52} {export['result']['seconds']:8.2f} {job_rate:10.0f} "
          f"{job_rate / bare_rate:7.2f} {export['bytes'] / 2**20:6.1f}  {export['load']:.2f}  "
          f"target >= {TARGET_RATE_RATIO}x: {verdict}")
    print(f"{'export_start wall (queue + job + storage)':<52} {export['wall']:8.2f} {rows / export['wall']:10.0f} "
          f"{rows / export['wall'] / bare_rate:7.2f}")
    print(f"(x bare: rows/s over the mean rows/s of the two '{same}' runs, which write exactly the export's "
          "columns; lines of the bare CSV are its rows, no header; the export's lines include its header)")
    print(f"export file: {export.get('lines')} lines, first rows: {export.get('head')}")

    peak = export["after"]["hwm_kib"] * 1024
    print("\n== peak memory (VmHWM of the process; ru_maxrss in brackets)")
    print(f"{'django-only process (the floor)':<46} {floor['hwm_kib'] / 1024:8.0f} MiB  ({floor['ru_maxrss_kib'] / 1024:.0f})")
    print(f"{'django + worker task modules (torch: ' + str(floor_tasks['torch_loaded']) + ')':<46} "
          f"{floor_tasks['hwm_kib'] / 1024:8.0f} MiB  ({floor_tasks['ru_maxrss_kib'] / 1024:.0f})")
    print(f"{'export process before export_start':<46} {export['before']['hwm_kib'] / 1024:8.0f} MiB  "
          f"({export['before']['ru_maxrss_kib'] / 1024:.0f})")
    print(f"{'export process after the job':<46} {peak / 2**20:8.0f} MiB  ({export['after']['ru_maxrss_kib'] / 1024:.0f})"
          f"; RSS now {export['after']['rss_kib'] / 1024:.0f} MiB")
    print(f"{'export job above the django-only floor':<46} {(export['after']['hwm_kib'] - floor['hwm_kib']) / 1024:8.0f} MiB")
    print(f"{'export job above its own process before it':<46} "
          f"{(export['after']['hwm_kib'] - export['before']['hwm_kib']) / 1024:8.0f} MiB")
    print("(ru_maxrss of a child starts at its parent's peak at fork: VmHWM is the figure)")
    diagnostic = lookup_diagnostic(dataset)
    print("\n== pieces of the Python path (SQLite's; Postgres's job is one COPY), timed alone in this process (info)")
    print(f"{'ORM row stream (values_list iterator, no gt)':<46} {diagnostic['stream_s']:8.2f} s")
    print(f"{'gt per chunk: sample_id__in list':<46} {diagnostic['in_s']:8.2f} s  "
          f"(all {SAMPLES // CHUNK} chunks, extrapolated from {diagnostic['chunks']})")
    print(f"{'gt per chunk: sample_id range (the path)':<46} {diagnostic['range_s']:8.2f} s  "
          f"(same rows: {diagnostic['same']})")
    ok = peak <= TARGET_PEAK_BYTES
    print(f"\ntarget peak memory <= {TARGET_PEAK_BYTES / 1e9:.0f} GB: {'met' if ok else 'MISSED'} ({peak / 1e6:.0f} MB)")
    if args.profile:
        print("\n== cProfile of export_start in the subprocess (internal time, top 20)")
        print(export["profile_tottime"])
        print("== cumulative, top 25")
        print(export["profile_cumulative"])
    _common.print_load()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
