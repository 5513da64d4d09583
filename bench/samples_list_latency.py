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
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_P95_MS = 100.0
PAGE = 100
SEED_MARK = _common.LIST_SEED_MARK
USERNAME = _common.LIST_USERNAME
GT_CLASS, TAG, RARE_WORD = _common.LIST_GT_CLASS, _common.LIST_TAG, _common.LIST_RARE_WORD
SPLITS = (("train", 0.7), ("dev", 0.1), ("valid", 0.1), ("test", 0.1))


# ---------------------------------------------------------------- seeding (bench/_common.py seeds; other
# benchmarks reuse this dataset through seeded_dataset / seed)


def seeded_dataset(count):
    return _common.list_dataset_seeded(f"bench-samples-{count}")


def seed(count):
    """The dataset of `count` samples, 70% train and 10% each of dev, valid and test, drawn at random."""
    rng = random.Random(11)
    names, weights = [s for s, _ in SPLITS], [w for _, w in SPLITS]
    return _common.seed_list_dataset(name=f"bench-samples-{count}",
                                     splits=[rng.choices(names, weights)[0] for _ in range(count)])


vacuum_analyze = _common.vacuum_analyze


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
