#!/usr/bin/env python
"""Samples list latency over HTTP on a large Postgres dataset, against bare SQL and a trivial endpoint.

Seeds (once, then reuses) a dataset of --samples samples with ground truth, a tag and caption
metadata, starts gunicorn on a free local port and times GET /api/datasets/{id}/samples/?limit=100
for several filters, offsets and keyset (`after=`) pages. Baselines measured in the same run, interleaved
with the cases: the bare first-page SQL through psycopg, and GET /api/jobs/?limit=1 (the framework's fixed
cost). Checks first that the maintained counters the counts come from equal a recount. Target: p95 <= 100 ms
for every case.

    .venv/bin/python bench/samples_list_latency.py                  # 500,000 samples, 50 requests a case
    .venv/bin/python bench/samples_list_latency.py --samples 50000 --requests 20
"""

import argparse
import hashlib
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_P95_MS = 100.0
PAGE = 100
SEED_VERSION = 1
SEED_MARK = f"seeded by bench/samples_list_latency.py v{SEED_VERSION}"
USERNAME = "bench-latency"
CLASSES = ["cat", "dog", "bird"]
GT_CLASS = "cat"
TAG = "blurry"
RARE_WORD = "zebra"  # in ~1% of captions; no other caption word shares its trigrams
SPLITS = (("train", 0.7), ("dev", 0.1), ("valid", 0.1), ("test", 0.1))
VOCABULARY = (
    "a the small large red green blue yellow black white old young dog cat bird car tree house street "
    "river mountain beach field city night day sunny cloudy snow rain person people child man woman "
    "sitting standing running walking near under over next to in on with playing looking photo image "
    "blurry bright dark close view"
).split()


# ---------------------------------------------------------------- seeding


def seeded_dataset(count):
    from imagestudio.datasets.models import Dataset

    return Dataset.objects.filter(name=f"bench-samples-{count}", description=SEED_MARK).first()


def seed(count, seed_value=20240611):
    """Create the dataset and bulk-load its rows with COPY, all in one transaction (VACUUM ANALYZE follows)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from imagestudio.annotations.services import counts_rebuild
    from imagestudio.datasets.models import Dataset, LabelClass, Tag
    from imagestudio.datasets.services import dataset_create, search_text

    rng = random.Random(seed_value)
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    name = f"bench-samples-{count}"
    started = time.perf_counter()
    with transaction.atomic():
        # A leftover without the completion mark cannot exist (one transaction), but clear stale names anyway.
        for stale in Dataset.objects.filter(name=name):
            _delete_rows(stale.id)
            stale.delete()
        dataset = dataset_create(user=user, name=name, classes=CLASSES)
        label_class = LabelClass.objects.get(dataset=dataset, name=GT_CLASS)
        tag = Tag.objects.create(dataset=dataset, name=TAG)
        split_names = [s for s, _ in SPLITS]
        split_weights = [w for _, w in SPLITS]
        now = datetime.now(UTC)
        split_counts = dict.fromkeys(split_names, 0)
        columns = ("split, external_id, file_name, original, thumbnail, width, height, format, bytes, sha256, "
                   "metadata, search_text, created_at, dataset_id")
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY datasets_sample ({columns}) FROM STDIN") as copy:
                for i in range(count):
                    split = rng.choices(split_names, split_weights)[0]
                    split_counts[split] += 1
                    words = rng.choices(VOCABULARY, k=rng.randint(5, 9))
                    if rng.random() < 0.01:
                        words.insert(rng.randrange(len(words) + 1), RARE_WORD)
                    metadata = {"caption": " ".join(words), "score": round(rng.random(), 4)}
                    external_id = f"img_{i:07d}.jpg"
                    sha = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()
                    folder = f"datasets/{dataset.id}"
                    copy.write_row((
                        split, external_id, external_id, f"{folder}/originals/{sha[:2]}/{sha}.jpg",
                        f"{folder}/thumbnails/{sha[:2]}/{sha}.jpg", 640, 480, "JPEG", 80_000 + i % 5000, sha,
                        json.dumps(metadata), search_text(external_id, external_id, metadata), now, dataset.id,
                    ))
            print(f"  samples copied       {time.perf_counter() - started:6.1f} s")
            cursor.execute("SELECT id FROM datasets_sample WHERE dataset_id = %s ORDER BY id", [dataset.id])
            ids = [row[0] for row in cursor.fetchall()]
            # ~20% of samples get ground truth for one class, half PRESENT, half ABSENT.
            with cursor.copy("COPY annotations_annotation (value, version, updated_at, label_class_id, sample_id, "
                             "updated_by_id) FROM STDIN") as copy:
                for sample_id in ids:
                    if rng.random() < 0.2:
                        value = "PRESENT" if rng.random() < 0.5 else "ABSENT"
                        copy.write_row((value, 1, now, label_class.id, sample_id, user.id))
            # ~5% of samples carry the tag.
            with cursor.copy("COPY datasets_sample_tags (sample_id, tag_id) FROM STDIN") as copy:
                for sample_id in ids:
                    if rng.random() < 0.05:
                        copy.write_row((sample_id, tag.id))
            print(f"  annotations and tags {time.perf_counter() - started:6.1f} s")
        counts_rebuild(dataset=dataset)  # the per-class, per-split ground-truth counters
        Dataset.objects.filter(pk=dataset.pk).update(split_counts=split_counts, description=SEED_MARK)
    print(f"  seeded               {time.perf_counter() - started:6.1f} s")
    return seeded_dataset(count)


def vacuum_analyze():
    """VACUUM (ANALYZE) the tables the list reads: fresh statistics, and a visibility map so that counts
    can use index-only scans, as autovacuum would give a dataset in steady use. Quick when nothing changed."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("datasets_sample", "annotations_annotation", "datasets_sample_tags"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    print(f"vacuum analyze {time.perf_counter() - started:.1f} s")


def _delete_rows(dataset_id):
    from django.db import connection

    with connection.cursor() as cursor:
        inner = "SELECT id FROM datasets_sample WHERE dataset_id = %s"
        for table in ("annotations_annotation", "annotations_annotationevent", "datasets_sample_tags",
                      "datasets_comment", "datasets_resamplemember"):
            cursor.execute(f"DELETE FROM {table} WHERE sample_id IN ({inner})", [dataset_id])
        cursor.execute("DELETE FROM datasets_sample WHERE dataset_id = %s", [dataset_id])


# ---------------------------------------------------------------- the server

free_port, start_server, wait_ready, stop_server = (_common.free_port, _common.start_server, _common.wait_ready,
                                                    _common.stop_server)


# ---------------------------------------------------------------- measuring


def build_cases(dataset, count):
    """(name, query params) of every measured case. Deep pages come twice: by offset, and by the keyset
    `after=` id that the previous page's `next` link carries (the id of the last row before the offset)."""
    train = dataset.split_counts.get("train", 0)
    gt_present = _gt_present(dataset)
    deep, deep_train, deep_gt = int(count * 0.8), int(train * 0.8), int(gt_present * 0.8)
    gt = f"{GT_CLASS}:PRESENT"
    return [
        ("first page", {}),
        (f"deep page (offset {deep:,})", {"offset": deep}),
        (f"deep page (after= id #{deep:,})", {"after": _id_before(dataset, deep)}),
        ("split=train", {"split": "train"}),
        (f"gt={gt}", {"gt": gt}),
        (f"tag={TAG}", {"tag": TAG}),
        (f"search={RARE_WORD}", {"search": RARE_WORD}),
        (f"split=train, offset {deep_train:,}", {"split": "train", "offset": deep_train}),
        (f"split=train, after= id #{deep_train:,}", {"split": "train", "after": _id_before(dataset, deep_train,
                                                                                           split="train")}),
        (f"gt={gt}, offset {deep_gt:,}", {"gt": gt, "offset": deep_gt}),
        (f"gt={gt}, after= id #{deep_gt:,}", {"gt": gt, "after": _id_before(dataset, deep_gt, gt_present=True)}),
    ]


def _id_before(dataset, position, split=None, gt_present=False):
    """The id of the `position`-th sample (1-based) of the filter in id order: `after=` it gives the same
    page as `offset=position`."""
    from django.db import connection

    sql = "SELECT s.id FROM datasets_sample s WHERE s.dataset_id = %s"
    params = [dataset.id]
    if split:
        sql += " AND s.split = %s"
        params.append(split)
    if gt_present:
        sql += (" AND EXISTS (SELECT 1 FROM annotations_annotation a JOIN datasets_labelclass c ON c.id = "
                "a.label_class_id WHERE a.sample_id = s.id AND c.dataset_id = s.dataset_id AND c.name = %s "
                "AND a.value = 'PRESENT')")
        params.append(GT_CLASS)
    sql += " ORDER BY s.id OFFSET %s LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, position - 1])
        return cursor.fetchone()[0]


def _gt_present(dataset):
    from imagestudio.annotations.models import GroundTruthCount

    return sum(GroundTruthCount.objects.filter(label_class__dataset=dataset, label_class__name=GT_CLASS)
               .values_list("present", flat=True))


def measure(runners, warmup, requests):
    """Run every runner `warmup` times, then `requests` rounds interleaved (noise hits all alike)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    timings = {name: [] for name in runners}
    for _ in range(requests):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    return timings


def http_runner(client, url, params, info):
    def run():
        response = client.get(url, params={"limit": PAGE, **params})
        if response.status_code != 200:
            raise SystemExit(f"GET {url} {params} -> {response.status_code}: {response.text[:300]}")
        body = response.json()
        results = body.get("results", [])
        info["count"], info["rows"], info["bytes"] = body.get("count"), len(results), len(response.content)
        info["count_exact"], info["next"] = body.get("count_exact"), body.get("next")
        info["first_id"] = results[0]["id"] if results else None
    return run


def sql_runner(conn, dataset_id):
    def run():
        conn.execute("SELECT * FROM datasets_sample WHERE dataset_id = %s ORDER BY id LIMIT 100",
                      [dataset_id]).fetchall()
    return run


# ---------------------------------------------------------------- query plans


def _page_args(dataset, params):
    """The case's arguments to selectors.sample_page, resolved as the list view resolves them."""
    from django.http import QueryDict

    from api.serializers.samples import SampleListQuerySerializer
    from imagestudio.annotations.selectors import ground_truth_prefetch

    query = QueryDict(mutable=True)
    query.update({key: str(value) for key, value in params.items()})
    query["limit"] = str(PAGE)
    serializer = SampleListQuerySerializer(data=query)
    serializer.is_valid(raise_exception=True)
    values = serializer.validated_data
    return {"dataset": dataset, "spec": serializer.to_filter(dataset), "ordering": values["ordering"],
            "limit": values["limit"], "offset": values["offset"], "after": values.get("after"),
            "prefetch": [ground_truth_prefetch()]}


def _is_count(sql):
    return "groundtruthcount" in sql or sql.lstrip().upper().startswith("SELECT COUNT(")


def _captured_page(dataset, params):
    """Run the view's selector (sample_page) for the case; its queries as (kind, ms, sql).

    kind: "ids" (the first query: the page's ids from the index), "count" (the counters or the capped
    count; none when the counts come from Dataset.split_counts), "rows" (the page's rows and prefetches).
    """
    from django.db import connection

    from imagestudio.datasets.selectors import sample_page

    kwargs = _page_args(dataset, params)
    timed = []

    def timer(execute, sql, sql_params, many, context):
        # CaptureQueriesContext rounds to whole milliseconds; time each query with perf_counter instead.
        started = time.perf_counter()
        try:
            return execute(sql, sql_params, many, context)
        finally:
            timed.append(((time.perf_counter() - started) * 1000, sql, sql_params))

    with connection.execute_wrapper(timer):
        sample_page(**kwargs)
    queries = []
    for index, (ms, sql, sql_params) in enumerate(timed):
        text = connection.ops.compose_sql(sql, sql_params) if sql_params else sql
        kind = "ids" if index == 0 else "count" if _is_count(text) else "rows"
        queries.append((kind, ms, text))
    return queries


def sql_breakdown(dataset, params, repeats=3):
    """Median milliseconds of (ids query, rows + prefetch queries, count query or None), run in-process."""
    runs = []
    for _ in range(repeats):
        queries = _captured_page(dataset, params)
        counts = [ms for kind, ms, _ in queries if kind == "count"]
        runs.append((sum(ms for kind, ms, _ in queries if kind == "ids"),
                     sum(ms for kind, ms, _ in queries if kind == "rows"),
                     sum(counts) if counts else None))
    middle = len(runs) // 2
    return tuple(None if runs[0][k] is None else sorted(run[k] for run in runs)[middle] for k in range(3))


def explain_case(dataset, params):
    """Run the case through sample_page as the view does; EXPLAIN ANALYZE its ids query and its count query."""
    from django.db import connection

    queries = _captured_page(dataset, params)
    print(f"queries of the page ({len(queries)}):")
    for kind, ms, sql in queries:
        print(f"  {kind:<5} {ms:8.1f} ms  {sql[:140]}{'...' if len(sql) > 140 else ''}")
    chosen = [q for q in queries if q[0] == "ids"][:1] + [q for q in queries if q[0] == "count"][:1]
    with connection.cursor() as cursor:
        for kind, _, sql in chosen:
            print(f"\n{kind} query:\n{sql}\n")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            for (line,) in cursor.fetchall():
                print("  " + line)


# ---------------------------------------------------------------- main


def _ms(value):
    return f"{value:.1f}" if isinstance(value, float) else ""


_server_version = _common.server_version


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000, help="samples in the dataset (default 500000)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per case (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per case first (default 5)")
    parser.add_argument("--explain", choices=("slowest", "all", "none"), default="slowest",
                        help="EXPLAIN ANALYZE the main queries of the slowest case (default), of every case, or none")
    parser.add_argument("--reseed", action="store_true", help="seed the dataset again even if it exists")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()

    env = _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    import httpx
    import psycopg
    from django.conf import settings
    from django.db import connection

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # silences whitenoise's "No directory" warning

    _common.print_environment("samples list latency", {
        "samples": f"{args.samples:,}", "requests": f"{args.requests} per case after {args.warmup} warm-up",
        "postgres": _server_version(connection),
    })

    dataset = None if args.reseed else seeded_dataset(args.samples)
    if dataset is None:
        print(f"seeding {args.samples:,} samples")
        dataset = seed(args.samples)
    else:
        print(f"reusing dataset {dataset.id} ({dataset.name})")
    vacuum_analyze()
    print(f"dataset {dataset.id}: splits {dataset.split_counts}")
    consistent = _common.print_counters_check(dataset, "counters (the list's counts come from them)")
    token = _common.bench_token(dataset.created_by)
    cases = build_cases(dataset, args.samples)
    connection.close()  # the server and psycopg below use their own connections

    port = free_port()
    process, command = start_server(env, port)
    print(f"server  gunicorn {command}\n")
    results = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Token {token}"}) as client:
            wait_ready(client, process)
            url = f"/api/datasets/{dataset.id}/samples/"
            infos = {name: {} for name, _ in cases}
            db = connection.settings_dict
            with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"],
                                 password=db["PASSWORD"] or None, autocommit=True) as conn:
                runners = {"baseline: bare SQL, first page": sql_runner(conn, dataset.id),
                           "baseline: HTTP GET /api/jobs/?limit=1": http_runner(client, "/api/jobs/", {"limit": 1},
                                                                              {})}
                for name, params in cases:
                    runners[name] = http_runner(client, url, params, infos[name])
                started = time.perf_counter()
                timings = measure(runners, args.warmup, args.requests)
                print(f"measured in {time.perf_counter() - started:.1f} s\n")
    finally:
        stop_server(process)

    # Where a case's time goes: the selector's queries timed in-process through the ORM.
    params_by_name = dict(cases)
    breakdown = {name: sql_breakdown(dataset, params) for name, params in cases}
    bare_p50 = _common.summarize_ms(timings["baseline: bare SQL, first page"])[0]
    header = (f"{'case':<40} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'x bare':>7} {'count':>9} "
              f"{'SQL ids':>8} {'SQL rows':>8} {'SQL cnt':>8}  target")
    print(header)
    print("-" * len(header))
    worst = None
    for name, seconds in timings.items():
        p50, p95, peak = _common.summarize_ms(seconds)
        is_case = name in params_by_name
        info = infos.get(name, {})
        count = info.get("count")
        count_text = "" if count is None else f"{count:,}{'' if info.get('count_exact', True) else '+'}"
        sql_ids, sql_rows, sql_count = breakdown.get(name, ("", "", ""))
        sql_count_text = "-" if is_case and sql_count is None else _ms(sql_count)
        verdict = ("ok" if p95 <= TARGET_P95_MS else "MISSED") if is_case else ""
        print(f"{name:<40} {p50:7.1f} {p95:7.1f} {peak:7.1f} {p50 / bare_p50:7.1f} {count_text:>9} "
              f"{_ms(sql_ids):>8} {_ms(sql_rows):>8} {sql_count_text:>8}  {verdict}")
        results[name] = p95
        if is_case and (worst is None or p95 > results[worst]):
            worst = name
    print("(x bare: p50 / bare SQL p50. count: '+' when count_exact is false (capped). SQL ids / rows / cnt: median\n"
          " ms in-process of the page's ids query, of its rows and prefetches, and of its count query; '-': the\n"
          " count came from Dataset.split_counts without a query)")

    # The keyset cases must return the same page as their offset twins, and offset pages link by key.
    print()
    names = list(params_by_name)
    same = True
    for name in names:
        if "after" not in params_by_name[name]:
            continue
        twin = names[names.index(name) - 1]
        first, twin_first = infos[name].get("first_id"), infos[twin].get("first_id")
        same &= first == twin_first
        print(f"{name}: first id {first}, {'same page as' if first == twin_first else 'DIFFERS from'} "
              f"'{twin}' (first id {twin_first})")
    for name in names:
        if "offset" in params_by_name[name]:
            link = infos[name].get("next") or ""
            print(f"next link of '{name}': {'keyset ' if 'after=' in link else 'NOT keyset: '}"
                  f"{link.split('?', 1)[-1]}")
    missed = [name for name in params_by_name if results[name] > TARGET_P95_MS]
    outcome = "met by every case" if not missed else f"missed by {len(missed)}: {', '.join(missed)}"
    print(f"\ntarget p95 <= {TARGET_P95_MS:.0f} ms: {outcome}")

    if args.explain != "none":
        chosen = [worst] if args.explain == "slowest" else list(params_by_name)
        for name in chosen:
            print(f"\n== EXPLAIN ANALYZE: {name} (p95 {results[name]:.1f} ms)")
            explain_case(dataset, params_by_name[name])
    _common.print_load()
    return 1 if missed or not same or not consistent else 0


if __name__ == "__main__":
    sys.exit(main())
