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
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_P95_MS = 100.0
PAGE = 100
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


@dataclass
class Case:
    label: str  # the same for every dataset, so columns line up
    params: dict
    note: str = ""  # this dataset's positions
    first_id: int | None = None  # the page's first sample, known independently of the service (keyset cases)


def build_cases(dataset):
    """Every measured case. Offsets go at most to MAX_OFFSET (deeper ones are a 400); deep pages (80 % of the
    filtered rows) go by key as the `next` links do (`after=` the last id of the page before, with the page's
    position as `offset`), and backwards as the `previous` links do (`before=` the first id of the page after)."""
    from imagestudio.datasets.selectors import MAX_OFFSET

    count = sum(dataset.split_counts.values())
    deep, deep_train, deep_gt = int(count * 0.8), int(dataset.split_counts.get("train", 0) * 0.8), \
        int(_gt_present(dataset) * 0.8)
    deep_search = int(_search_matches(dataset) * 0.8)
    gt = f"{GT_CLASS}:PRESENT"
    train, present, search = {"split": "train"}, {"gt": True}, {"search": RARE_WORD}
    bound = {"offset": MAX_OFFSET}

    def by_key(label, position, params, query):
        return Case(label, {**query, "after": _id_at(dataset, position, **params), "offset": position},
                    f"after= id #{position:,}", _id_at(dataset, position + 1, **params))

    return [
        Case("first page", {}),
        Case("offset at the bound", bound, f"offset {MAX_OFFSET:,}"),
        by_key("deep page by key (80%)", deep, {}, {}),
        Case("deep page backwards by key (80%)",
             {"before": _id_at(dataset, deep + PAGE + 1), "offset": deep}, f"before= id #{deep + PAGE + 1:,}",
             _id_at(dataset, deep + 1)),
        Case("split=train", train),
        Case(f"gt={gt}", {"gt": gt}),
        Case(f"tag={TAG}", {"tag": TAG}),
        Case(f"search={RARE_WORD}", search),
        Case("split=train, offset at the bound", {**train, **bound}, f"offset {MAX_OFFSET:,}"),
        by_key("split=train, by key (80%)", deep_train, train, train),
        Case(f"gt={gt}, offset at the bound", {"gt": gt, **bound}, f"offset {MAX_OFFSET:,}"),
        by_key(f"gt={gt}, by key (80%)", deep_gt, present, {"gt": gt}),
        by_key(f"search={RARE_WORD}, by key (80%)", deep_search, search, search),
    ]


def _id_at(dataset, position, split=None, gt=False, search=None):
    """The id of the `position`-th sample (1-based) of the filter in id order, by SQL of its own."""
    from django.db import connection

    sql = "SELECT s.id FROM datasets_sample s WHERE s.dataset_id = %s"
    params = [dataset.id]
    if split:
        sql += " AND s.split = %s"
        params.append(split)
    if gt:
        sql += (" AND EXISTS (SELECT 1 FROM annotations_annotation a JOIN datasets_labelclass c ON c.id = "
                "a.label_class_id WHERE a.sample_id = s.id AND c.dataset_id = s.dataset_id AND c.name = %s "
                "AND a.value = 'PRESENT')")
        params.append(GT_CLASS)
    if search:
        sql += " AND strpos(s.search_text, %s) > 0"
        params.append(search)
    sql += " ORDER BY s.id OFFSET %s LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, position - 1])
        return cursor.fetchone()[0]


def _gt_present(dataset):
    from imagestudio.annotations.models import GroundTruthCount

    return sum(GroundTruthCount.objects.filter(label_class__dataset=dataset, label_class__name=GT_CLASS)
               .values_list("present", flat=True))


def _search_matches(dataset):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM datasets_sample WHERE dataset_id = %s AND strpos(search_text, %s) > 0",
                       [dataset.id, RARE_WORD])
        return cursor.fetchone()[0]


def measure(runners, warmup, requests):
    """Run every runner `warmup` times, then `requests` rounds interleaved (noise hits all alike). Kept for the
    benchmarks that share it; this one times each side alone (time_alone)."""
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


@dataclass
class Timed:
    seconds: list
    load: float  # 1-minute load average at the end of the block
    parts: dict = field(default_factory=dict)  # bare SQL: kind -> seconds per run


def time_alone(run, warmup, requests):
    """`warmup` untimed runs, then `requests` timed ones, in a block of their own (nothing else runs between)."""
    for _ in range(warmup):
        run()
    timed = Timed([], 0.0)
    for _ in range(requests):
        started = time.perf_counter()
        parts = run()
        timed.seconds.append(time.perf_counter() - started)
        for kind, seconds in (parts or {}).items():
            timed.parts.setdefault(kind, []).append(seconds)
    timed.load = os.getloadavg()[0]
    return timed


def http_runner(client, url, params, info):
    def run():
        response = client.get(url, params={"limit": PAGE, **params})
        if response.status_code != 200:
            raise SystemExit(f"GET {url} {params} -> {response.status_code}: {response.text[:300]}")
        body = response.json()
        results = body.get("results", [])
        info["count"], info["rows"], info["bytes"] = body.get("count"), len(results), len(response.content)
        info["count_exact"], info["next"] = body.get("count_exact"), body.get("next")
        info["previous"] = body.get("previous")
        info["first_id"] = results[0]["id"] if results else None
    return run


def bare_runner(conn, statements):
    """The service's own SQL statements for the page (captured from sample_page, with their literal values),
    replayed through psycopg: the same database work without Django, DRF and HTTP."""
    def run():
        parts = {}
        for kind, sql in statements:
            started = time.perf_counter()
            conn.execute(sql).fetchall()
            parts[kind] = parts.get(kind, 0.0) + time.perf_counter() - started
        return parts
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
            "before": values.get("before"), "prefetch": [ground_truth_prefetch()]}


def _is_count(sql):
    return "groundtruthcount" in sql or sql.lstrip().upper().startswith("SELECT COUNT(")


def captured_page(dataset, params):
    """Run the view's selector (sample_page) for the case; its queries as (kind, ms, sql with literal values).

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


def explain_case(dataset, params):
    """Run the case through sample_page as the view does; EXPLAIN ANALYZE its ids query and its count query."""
    from django.db import connection

    queries = captured_page(dataset, params)
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


def _p50(seconds):
    return _common.summarize_ms(seconds)[0]


def measure_dataset(dataset, client, conn, args):
    """Time every case of one dataset: first the bare SQL of every case, each in a block of its own, then the
    HTTP requests, each case in a block of its own. Returns ({label: (http Timed, bare Timed)}, infos)."""
    cases = build_cases(dataset)
    statements = {case.label: [(kind, sql) for kind, _, sql in captured_page(dataset, case.params)]
                  for case in cases}
    bare = {case.label: time_alone(bare_runner(conn, statements[case.label]), args.warmup, args.requests)
            for case in cases}
    url = f"/api/datasets/{dataset.id}/samples/"
    infos = {case.label: {} for case in cases}
    http = {case.label: time_alone(http_runner(client, url, case.params, infos[case.label]), args.warmup,
                                   args.requests) for case in cases}
    return cases, {case.label: (http[case.label], bare[case.label]) for case in cases}, infos


def print_dataset(dataset, cases, results, infos, jobs):
    print(f"\n== dataset {dataset.id} {dataset.name}: {sum(dataset.split_counts.values()):,} samples "
          f"{dataset.split_counts}")
    header = (f"{'case':<36} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'load':>5} | {'bare p50':>8} {'p95':>6} "
              f"{'load':>5} {'x bare':>6} | {'ids':>6} {'rows':>6} {'cnt':>6} | {'count':>10}  target")
    print(header)
    print("-" * len(header))
    jobs_p50, jobs_p95, jobs_max = _common.summarize_ms(jobs.seconds)
    print(f"{'baseline: GET /api/jobs/?limit=1':<36} {jobs_p50:7.1f} {jobs_p95:7.1f} {jobs_max:7.1f} "
          f"{jobs.load:5.2f} |")
    for case in cases:
        http, bare = results[case.label]
        p50, p95, peak = _common.summarize_ms(http.seconds)
        bare_p50, bare_p95, _ = _common.summarize_ms(bare.seconds)
        parts = [f"{_p50(bare.parts[k]):6.1f}" if k in bare.parts else f"{'-':>6}" for k in ("ids", "rows", "count")]
        info = infos[case.label]
        count = info.get("count")
        count_text = "" if count is None else f"{count:,}{'' if info.get('count_exact', True) else '+'}"
        verdict = "ok" if p95 <= TARGET_P95_MS else "MISSED"
        print(f"{case.label:<36} {p50:7.1f} {p95:7.1f} {peak:7.1f} {http.load:5.2f} | {bare_p50:8.1f} "
              f"{bare_p95:6.1f} {bare.load:5.2f} {p50 / bare_p50:6.1f} | {' '.join(parts)} | {count_text:>10}  "
              f"{verdict}")
    print("(HTTP p50 / p95 / max over the requests, and the 1-minute load average after them; bare: the service's\n"
          " own SQL statements for the page replayed through psycopg, timed alone before the HTTP requests; x bare:\n"
          " HTTP p50 / bare p50; ids / rows / cnt: bare p50 of the page's ids query, of its rows and prefetches, and\n"
          " of its count query ('-': the count came from Dataset.split_counts without a query); count: '+' when\n"
          " count_exact is false)")
    for case in cases:
        if case.note:
            print(f"  {case.label}: {case.note}")


def check_pages(cases, infos, client, dataset):
    """Keyset cases start on the sample their position names; links go by key; an offset past the bound is a 400
    that names `after`. Returns True when all hold."""
    from imagestudio.datasets.selectors import MAX_OFFSET

    ok = True
    for case in cases:
        info = infos[case.label]
        if case.first_id is not None:
            same = info.get("first_id") == case.first_id
            ok &= same
            print(f"{case.label}: first id {info.get('first_id')} {'=' if same else '!='} the id at its position "
                  f"({case.first_id})")
        link = info.get("next") or ""
        keyset = "after=" in link
        ok &= keyset or not link
        previous = info.get("previous") or ""
        print(f"  next link {'keyset' if keyset else 'NOT keyset' if link else 'none'}; previous link "
              f"{'keyset' if 'before=' in previous else 'by offset' if 'offset=' in previous else previous or 'none'}")
    response = client.get(f"/api/datasets/{dataset.id}/samples/", params={"offset": MAX_OFFSET + 1})
    refused = response.status_code == 400 and "after" in json.dumps(response.json().get("offset", ""))
    ok &= refused
    print(f"offset {MAX_OFFSET + 1:,}: {response.status_code} {response.text[:160]}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500_000, help="samples in the dataset (default 500000)")
    parser.add_argument("--per-split", type=int, default=0, metavar="N",
                        help="also measure a dataset of N samples in each of the 4 splits (500000: the product's "
                             "largest, 2,000,000), with the --samples dataset in the same table")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per case (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per case first (default 5)")
    parser.add_argument("--explain", choices=("slowest", "all", "none"), default="slowest",
                        help="EXPLAIN ANALYZE the main queries of the slowest case (default), of every case, or none")
    parser.add_argument("--reseed", action="store_true", help="seed the datasets again even if they exist")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()

    env = _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    import httpx
    from django.conf import settings
    from django.db import connection

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # silences whitenoise's "No directory" warning

    _common.print_environment("samples list latency", {
        "samples": f"{args.samples:,}" + (f" and 4 x {args.per_split:,}" if args.per_split else ""),
        "requests": f"{args.requests} per case after {args.warmup} warm-up, each case timed alone",
        "postgres": _common.server_version(connection),
    })

    dataset = None if args.reseed else seeded_dataset(args.samples)
    if dataset is None:
        print(f"seeding {args.samples:,} samples")
        dataset = seed(args.samples)
    else:
        print(f"reusing dataset {dataset.id} ({dataset.name})")
    datasets = [dataset]
    if args.per_split:
        datasets.append(_common.per_split_dataset(args.per_split, reseed=args.reseed))
    vacuum_analyze()
    consistent = True
    for each in datasets:
        consistent &= _common.print_counters_check(each, f"counters of {each.name} (the list's counts come from them)")
    token = _common.bench_token(dataset.created_by)

    port = free_port()
    process, command = start_server(env, port)
    print(f"server  gunicorn {command}")
    measured = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Token {token}"}) as client, \
                _common.psycopg_connect() as conn:
            wait_ready(client, process)
            started = time.perf_counter()
            jobs = time_alone(http_runner(client, "/api/jobs/", {"limit": 1}, {}), args.warmup, args.requests)
            for each in datasets:
                cases, results, infos = measure_dataset(each, client, conn, args)
                print_dataset(each, cases, results, infos, jobs)
                consistent &= check_pages(cases, infos, client, each)
                measured.append((each, cases, results))
            print(f"\nmeasured in {time.perf_counter() - started:.1f} s")
    finally:
        stop_server(process)

    missed = []
    if len(measured) > 1:
        print(f"\n{'case: HTTP p95 ms (load)':<36} " + " ".join(f"{each.name:>24}" for each, _, _ in measured))
        for case in measured[0][1]:
            cells = []
            for _, _, results in measured:
                http = results[case.label][0]
                cells.append(f"{_common.summarize_ms(http.seconds)[1]:14.1f} ({http.load:5.2f})  ")
            print(f"{case.label:<36} " + " ".join(cells))
    for each, cases, results in measured:
        p95 = {case.label: _common.summarize_ms(results[case.label][0].seconds)[1] for case in cases}
        missed += [f"{label} ({each.name})" for label, value in p95.items() if value > TARGET_P95_MS]
        if args.explain != "none":
            chosen = [max(p95, key=p95.get)] if args.explain == "slowest" else list(p95)
            for case in cases:
                if case.label in chosen:
                    print(f"\n== EXPLAIN ANALYZE on {each.name}: {case.label} (p95 {p95[case.label]:.1f} ms)")
                    explain_case(each, case.params)
    outcome = "met by every case" if not missed else f"missed by {len(missed)}: {', '.join(missed)}"
    print(f"\ntarget p95 <= {TARGET_P95_MS:.0f} ms: {outcome}")
    _common.print_load()
    return 1 if missed or not consistent else 0


if __name__ == "__main__":
    sys.exit(main())
