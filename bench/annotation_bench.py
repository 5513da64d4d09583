#!/usr/bin/env python
"""Bulk annotation and ground-truth counts on Postgres, over HTTP, against raw SQL in the same run.

Bulk: POST /api/datasets/{id}/annotations/bulk/ with 10,000 sample ids, one class, alternately PRESENT
and ABSENT (so every pair changes every time), against one raw INSERT ... SELECT FROM unnest(...)
ON CONFLICT DO UPDATE of the same 10,000 rows through psycopg (alternating too; on another class of the
same samples, so that it never moves a value behind the counters' back). Target: median <= 1 s.
Then the bulk by filter (split=dev) for information, and a check that the counters equal a recount.

Counts: GET /api/datasets/{id}/classes/ (present / absent / unlabeled per class and split, from the
maintained counters) on the 500,000-sample dataset, against the GROUP BY scan the counters avoid and
GET /api/jobs/?limit=1 (the framework's fixed cost). Target: p95 <= 50 ms.

Reuses (or seeds) the dataset of bench/samples_list_latency.py. The seed writes ground truth for `cat`
only; this benchmark writes `dog` (HTTP) and `bird` (raw SQL) as its own user and deletes those rows,
its events and batches afterwards, so the dataset is left as seeded.

    .venv/bin/python bench/annotation_bench.py                 # 500,000 samples, 20 bulk requests
    .venv/bin/python bench/annotation_bench.py --samples 20000 --bulk-requests 10
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import samples_list_latency as samples_bench  # noqa: E402  (seeding of the shared dataset)

TARGET_BULK_S = 1.0
TARGET_COUNTS_P95_MS = 50.0
USERNAME = "bench-annotations"
HTTP_CLASS = "dog"  # written through the API
RAW_CLASS = "bird"  # written by the raw upsert baseline
VALUES = ("PRESENT", "ABSENT")

RAW_UPSERT = """
INSERT INTO annotations_annotation (value, version, updated_at, label_class_id, sample_id, updated_by_id)
SELECT %(value)s, 1, now(), %(class_id)s, s.id, %(user_id)s FROM unnest(%(ids)s::bigint[]) AS s(id)
ON CONFLICT (sample_id, label_class_id) DO UPDATE
SET value = EXCLUDED.value, version = annotations_annotation.version + 1,
    updated_at = EXCLUDED.updated_at, updated_by_id = EXCLUDED.updated_by_id
"""

COUNT_SCAN = """
SELECT a.label_class_id, s.split, a.value, count(*)
FROM annotations_annotation a JOIN datasets_sample s ON s.id = a.sample_id
WHERE s.dataset_id = %s GROUP BY 1, 2, 3
"""


# ---------------------------------------------------------------- set-up and clean-up


def bench_user(dataset):
    from django.contrib.auth import get_user_model

    from imagestudio.datasets.models import DatasetMembership, Role

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    DatasetMembership.objects.update_or_create(dataset=dataset, user=user, defaults={"role": Role.ANNOTATOR})
    return user


def clean_up(dataset, user, classes):
    """Delete what this benchmark wrote (rows of its classes, its events and batches); rebuild the counters
    when anything was deleted. Returns the number of annotation rows deleted."""
    from django.db import connection, transaction

    from imagestudio.annotations.services import counts_rebuild

    class_ids = [c.id for c in classes]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotations_annotationevent WHERE dataset_id = %s AND user_id = %s",
                       [dataset.id, user.id])
        events = cursor.rowcount
        cursor.execute("DELETE FROM annotations_annotationbatch WHERE dataset_id = %s AND user_id = %s",
                       [dataset.id, user.id])
        cursor.execute("DELETE FROM annotations_annotation WHERE label_class_id = ANY(%s)", [class_ids])
        rows = cursor.rowcount
        if rows or events:
            counts_rebuild(dataset=dataset)
    if rows or events:
        print(f"clean-up: deleted {rows:,} annotations of {', '.join(c.name for c in classes)} and {events:,} "
              f"events ({time.perf_counter() - started:.1f} s)")
    return rows


# ---------------------------------------------------------------- bulk


def post_bulk(client, dataset_id, body, expect_changed=None):
    started = time.perf_counter()
    response = client.post(f"/api/datasets/{dataset_id}/annotations/bulk/", json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"bulk -> {response.status_code}: {response.text[:500]}")
    result = response.json()
    if expect_changed is not None and result["changed"] != expect_changed:
        raise SystemExit(f"bulk {body.get('value')}: changed {result['changed']}, expected {expect_changed}: {result}")
    return seconds, result


def raw_upsert(conn, class_id, user_id, ids, value):
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.execute(RAW_UPSERT, {"value": value, "class_id": class_id, "user_id": user_id, "ids": ids})
        if cursor.rowcount != len(ids):
            raise SystemExit(f"raw upsert wrote {cursor.rowcount} rows, expected {len(ids)}")
    return time.perf_counter() - started


def in_process_breakdown(dataset, user, label_class, ids, value, profile=False):
    """The view's work for one bulk request, in-process: (total s, SQL s, queries). Changes the labels.

    profile: print a cProfile of it (top 30 by cumulative time)."""
    from django.db import connection

    from api.serializers.annotations import BulkAnnotationSerializer
    from imagestudio.annotations.services import annotations_bulk_set

    timings = []

    def timer(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - started, _label(sql, params, many)))

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    with connection.execute_wrapper(timer):
        serializer = BulkAnnotationSerializer(data={"sample_ids": ids, "classes": [label_class.name], "value": value})
        serializer.is_valid(raise_exception=True)
        result = annotations_bulk_set(dataset=dataset, user=user, samples=serializer.samples(dataset),
                                      classes=[label_class], value=value)
    total = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        print("\n-- cProfile of one bulk request's work in-process (serializer + annotations_bulk_set)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    if result["changed"] != len(ids):
        raise SystemExit(f"in-process bulk changed {result['changed']}, expected {len(ids)}")
    return total, timings


def _label(sql, params, many):
    """A short description of a query: its first words and how many parameters it carries."""
    words = " ".join(sql.replace('"', "").split()[:6])
    count = len(params) if params is not None and not many else 0
    return f"{words[:70]}{'...' if len(words) > 70 else ''} ({count:,} params)"


def _s(values):
    return statistics.median(values), _common.percentile(values, 95), max(values)


# ---------------------------------------------------------------- counts


def classes_runner(client, dataset_id, info):
    def run():
        response = client.get(f"/api/datasets/{dataset_id}/classes/")
        if response.status_code != 200:
            raise SystemExit(f"GET classes -> {response.status_code}: {response.text[:300]}")
        info["body"] = response.json()
    return run


def jobs_runner(client):
    def run():
        response = client.get("/api/jobs/", params={"limit": 1})
        if response.status_code != 200:
            raise SystemExit(f"GET jobs -> {response.status_code}")
    return run


def scan_runner(conn, dataset_id, info):
    def run():
        info["rows"] = conn.execute(COUNT_SCAN, [dataset_id]).fetchall()
    return run


def counts_agree(body, scan_rows, split_counts):
    """Whether the endpoint's counts equal the scan's (and unlabeled = split size - labelled)."""
    scanned = {}
    for class_id, split, value, n in scan_rows:
        scanned[(class_id, split, value)] = n
    classes = body["results"] if isinstance(body, dict) else body
    for label_class in classes:
        for split, counts in label_class["counts"].items():
            present = scanned.get((label_class["id"], split, "PRESENT"), 0)
            absent = scanned.get((label_class["id"], split, "ABSENT"), 0)
            expected = {"present": present, "absent": absent, "unlabeled": split_counts[split] - present - absent}
            if counts != expected:
                return False, f"class {label_class['name']} split {split}: endpoint {counts}, scan {expected}"
    return True, f"{len(classes)} classes x {len(split_counts)} splits"


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000,
                        help="samples of the dataset (default 500000; seeded as bench/samples_list_latency.py does)")
    parser.add_argument("--ids", type=int, default=10_000, help="sample ids per bulk request (default 10000, the API's max)")
    parser.add_argument("--bulk-requests", type=int, default=20,
                        help="timed bulk requests, alternating PRESENT / ABSENT (default 20)")
    parser.add_argument("--filter-requests", type=int, default=2,
                        help="bulk-by-filter (split=dev) requests, for information (default 2; 0 skips)")
    parser.add_argument("--requests", type=int, default=50, help="timed GET classes requests (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed GET requests first (default 5)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the in-process bulk run")
    parser.add_argument("--keep", action="store_true", help="keep the written labels, events and batches")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()

    env = _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    import httpx
    from django.conf import settings
    from django.db import connection

    from imagestudio.datasets.models import LabelClass

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    _common.print_environment("annotation benchmark", {
        "samples": f"{args.samples:,}",
        "bulk": f"{args.bulk_requests} requests of {args.ids:,} ids x 1 class, alternating PRESENT / ABSENT",
        "counts": f"{args.requests} requests after {args.warmup} warm-up",
        "postgres": _common.server_version(connection),
    })

    dataset = samples_bench.seeded_dataset(args.samples)
    if dataset is None:
        print(f"seeding {args.samples:,} samples")
        dataset = samples_bench.seed(args.samples)
    else:
        print(f"reusing dataset {dataset.id} ({dataset.name})")
    user = bench_user(dataset)
    http_class = LabelClass.objects.get(dataset=dataset, name=HTTP_CLASS)
    raw_class = LabelClass.objects.get(dataset=dataset, name=RAW_CLASS)
    clean_up(dataset, user, [http_class, raw_class])  # leftovers of an interrupted run
    samples_bench.vacuum_analyze()
    consistent_before = _common.print_counters_check(dataset, "counters before")
    rng = random.Random(7)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM datasets_sample WHERE dataset_id = %s", [dataset.id])
        all_ids = [row[0] for row in cursor.fetchall()]
    ids = rng.sample(all_ids, args.ids)
    token = _common.bench_token(user)
    split_counts = dict(dataset.split_counts)
    connection.close()

    port = _common.free_port()
    process, command = _common.start_server(env, port)
    print(f"server  gunicorn {command}\n")
    ok = True
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                          headers={"Authorization": f"Token {token}"}) as client, \
                _common.psycopg_connect() as conn:
            _common.wait_ready(client, process)

            # ---- counts (the dataset as seeded)
            info, scan = {}, {}
            runners = {"baseline: GROUP BY scan (psycopg)": scan_runner(conn, dataset.id, scan),
                       "baseline: HTTP GET /api/jobs/?limit=1": jobs_runner(client),
                       "GET /api/datasets/{id}/classes/": classes_runner(client, dataset.id, info)}
            timings = samples_bench.measure(runners, args.warmup, args.requests)
            agree, detail = counts_agree(info["body"], scan["rows"], split_counts)
            ok &= agree

            # ---- bulk by ids: the first request of each side creates the rows (timed for information)
            body = {"sample_ids": ids, "classes": [HTTP_CLASS]}
            first_http, _ = post_bulk(client, dataset.id, {**body, "value": VALUES[0]}, expect_changed=len(ids))
            first_raw = raw_upsert(conn, raw_class.id, user.id, ids, VALUES[0])
            http_s, raw_s = [], []
            started = time.perf_counter()
            for index in range(args.bulk_requests):
                value = VALUES[(index + 1) % 2]  # ABSENT, PRESENT, ABSENT, ...: every pair changes
                seconds, result = post_bulk(client, dataset.id, {**body, "value": value}, expect_changed=len(ids))
                http_s.append(seconds)
                raw_s.append(raw_upsert(conn, raw_class.id, user.id, ids, value))
            bulk_wall = time.perf_counter() - started
            rss_kib, hwm_kib = _common.proc_memory_kib(_common.worker_pids(process)[0])

            # ---- where a bulk request's time goes: the same work in-process, once more (changes every pair)
            total_s, queries = in_process_breakdown(dataset, user, http_class, ids,
                                                           VALUES[(args.bulk_requests + 1) % 2], args.profile)

            # ---- bulk by filter, for information
            filter_runs = []
            for index in range(args.filter_requests):
                value = VALUES[index % 2]
                seconds, result = post_bulk(client, dataset.id, {"filter": {"split": "dev"}, "classes": [HTTP_CLASS],
                                                                 "value": value})
                filter_runs.append((value, seconds, result))
    finally:
        _common.stop_server(process)

    # ---- the raw rows never moved the counters: delete them before comparing the counters with a recount
    from django.db import connection as django_connection

    with django_connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotations_annotation WHERE label_class_id = %s", [raw_class.id])
    print()
    consistent_after = _common.print_counters_check(dataset, f"counters after the bulk writes ({HTTP_CLASS})")
    ok &= consistent_before and consistent_after

    # ---- report
    print(f"\n== bulk annotation: {args.ids:,} samples x 1 class per request "
          f"({args.bulk_requests} requests interleaved with the raw upsert, {bulk_wall:.1f} s)")
    header = f"{'':<44} {'median s':>9} {'p95 s':>8} {'max s':>8} {'x raw':>7}  target"
    print(header)
    print("-" * len(header))
    raw_median = statistics.median(raw_s)
    for name, values, is_case in (("raw upsert, one statement (psycopg)", raw_s, False),
                                  ("POST .../annotations/bulk/ (HTTP)", http_s, True)):
        median, p95, peak = _s(values)
        verdict = ("ok" if median <= TARGET_BULK_S else "MISSED") if is_case else ""
        print(f"{name:<44} {median:9.3f} {p95:8.3f} {peak:8.3f} {median / raw_median:7.1f}  {verdict}")
    print(f"{'first request (creates the rows), HTTP':<44} {first_http:9.3f}")
    print(f"{'first statement (creates the rows), raw':<44} {first_raw:9.3f}")
    sql_s = sum(seconds for seconds, _ in queries)
    print(f"in-process (serializer + annotations_bulk_set, no HTTP): {total_s:.3f} s, of which SQL {sql_s:.3f} s "
          f"in {len(queries)} queries (the rest is Python: ORM objects, SQL compilation, parameter adaptation):")
    for seconds, label in queries:
        print(f"  {seconds * 1000:7.1f} ms  {label}")
    print(f"web worker memory after the bulk requests: RSS {rss_kib / 1024:.0f} MiB, peak (VmHWM) {hwm_kib / 1024:.0f} MiB")
    print(f"throughput: HTTP {args.ids / statistics.median(http_s):,.0f} pairs/s, raw {args.ids / raw_median:,.0f} pairs/s")
    bulk_ok = statistics.median(http_s) <= TARGET_BULK_S
    print(f"target median <= {TARGET_BULK_S:.0f} s: {'met' if bulk_ok else 'MISSED'} "
          f"(p95 {_common.percentile(http_s, 95):.3f} s)")
    if filter_runs:
        print("\nbulk by filter {\"split\": \"dev\"} (information):")
        for value, seconds, result in filter_runs:
            print(f"  {value:<8} {seconds:7.3f} s  samples {result['samples']:,}, changed {result['changed']:,}, "
                  f"unchanged {result['unchanged']:,}  ({result['changed'] / seconds:,.0f} changed pairs/s)")

    print(f"\n== ground-truth counts: {args.samples:,} samples, {args.requests} requests each (interleaved)")
    header = f"{'':<44} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'x jobs':>7}  target"
    print(header)
    print("-" * len(header))
    jobs_p50 = _common.summarize_ms(timings["baseline: HTTP GET /api/jobs/?limit=1"])[0]
    for name, seconds in timings.items():
        p50, p95, peak = _common.summarize_ms(seconds)
        is_case = name.startswith("GET")
        verdict = ("ok" if p95 <= TARGET_COUNTS_P95_MS else "MISSED") if is_case else ""
        print(f"{name:<44} {p50:7.1f} {p95:7.1f} {peak:7.1f} {p50 / jobs_p50:7.1f}  {verdict}")
    classes_p95 = _common.summarize_ms(timings["GET /api/datasets/{id}/classes/"])[1]
    print(f"endpoint counts equal the scan: {'yes' if agree else 'NO'} ({detail})")
    counts_ok = classes_p95 <= TARGET_COUNTS_P95_MS
    print(f"target p95 <= {TARGET_COUNTS_P95_MS:.0f} ms: {'met' if counts_ok else 'MISSED'}")

    if not args.keep:
        print()
        clean_up(dataset, user, [http_class, raw_class])
        ok &= _common.print_counters_check(dataset, "counters after clean-up")
    _common.print_load()
    return 0 if ok and bulk_ok and counts_ok else 1


if __name__ == "__main__":
    sys.exit(main())
