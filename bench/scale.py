#!/usr/bin/env python
"""The product's largest size beside a 500K dataset (issue 17): one dataset of 4 x --per-split samples (500,000 in
each of train, dev, valid and test: 2,000,000) and one of --samples (500,000; 70/10/10/10), both in the bench
database at once, both with 512-d vectors under the bench's random ViT-B-32.

Every figure comes from a fresh process that does that one thing (never interleaved with its baseline), and is
printed with the load average:
  scan        Matrix.score and the bare kernels on --samples rows (bench/scan_kernels.py, each kernel alone)
  split       lf_preview of an image-similarity rule on the dev split, in-process (median of --repeats), against
              the bare bfloat16 torch.mv over a contiguous matrix of the same rows in its own process
  http        POST /api/datasets/{id}/lfs/preview/ on the whole dataset against gunicorn (1 worker) after
              POST .../resources/: p50 / p95 of --requests
  cold        a new process mapping the matrix files and reading every page (matrix_get + warm), the files
              in the page cache; and writing the files from Postgres (the first use after embedding)
  memory      two processes holding the same matrix: each one's resident and proportional memory, the matrix
              mapping's private bytes (what a second process adds for the matrix), a Django-only process
  lf save     lf_create of a similarity LF that votes on every sample of the dataset (all its vote rows new)
  list        the samples list (bench/samples_list_latency.py --per-split) and the export (bench/export_bench.py),
              run as they are, in their own processes, when --with-list / --with-export are given

    .venv/bin/python bench/scale.py                      # 4 x 500,000 and 500,000 (seeds them the first time)
    .venv/bin/python bench/scale.py --per-split 100000 --samples 100000 --repeats 10 --requests 20
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import embedding_bench  # noqa: E402
import scan_kernels  # noqa: E402

ROOT = _common.REPO
TARGETS = {"split": 2.5, "http_p50_ms": 300, "cold_s": 3.0, "second_process": 0.10, "lf_save_s": 2.0}


def _child(section, *args):
    out = subprocess.run([sys.executable, __file__, "--child", section, *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"child {section} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load():
    return round(os.getloadavg()[0], 2)


def _django():
    embedding_bench.configure()
    import django

    django.setup()


def _dataset_and_record(dataset_id):
    from imagestudio.datasets.models import Dataset
    from imagestudio.embeddings.store import record_for

    # as a web process finds it: without loading the encoder (its fingerprint is known)
    return Dataset.objects.get(pk=dataset_id), record_for("open_clip")


# ---------------------------------------------------------------- children: one measurement each


def child_split(dataset_id, repeats):
    import numpy as np

    from imagestudio.embeddings.services import scores_for
    from imagestudio.embeddings.store import matrix_get
    from imagestudio.labeling.services import Rule, lf_preview

    dataset, record = _dataset_and_record(dataset_id)
    matrix = matrix_get(dataset=dataset, record=record)
    sample_id = int(matrix.sample_ids[777])
    rule = Rule(label_class=dataset.classes.order_by("id").first(), type="similarity_image",
                config={"sample_id": sample_id, "encoder": "open_clip"}, low=0.0, high=0.1, invert=False)
    query = matrix.features(np.array([777]))[0]
    timings = {name: statistics.median(scan_kernels.timed(fn, repeats)) for name, fn in (
        ("preview", lambda: lf_preview(dataset=dataset, rule=rule, split="dev")),
        ("scores_for", lambda: scores_for(dataset=dataset, record=record, vector=query, split="dev")))}
    rows = int((matrix.splits == 1).sum())
    print(json.dumps({**timings, "rows": rows, "load": _load()}))


def child_bare_split(rows, repeats):
    """The bare kernel on a contiguous bfloat16 matrix of the split's size (the best this machine does)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    matrix = torch.empty((rows, 512), dtype=torch.bfloat16)
    for start in range(0, rows, 100_000):
        block = rng.standard_normal((min(100_000, rows - start), 512), dtype=np.float32)
        matrix[start:start + len(block)] = torch.from_numpy(block / np.linalg.norm(block, axis=1, keepdims=True))
    query = matrix[7].clone()
    runs = scan_kernels.timed(lambda: torch.mv(matrix, query).float().numpy(), repeats)
    print(json.dumps({"bare": statistics.median(runs), "load": _load()}))


def child_cold(dataset_id, rebuild):
    import shutil

    from django.conf import settings

    from imagestudio.embeddings import vector_files
    from imagestudio.embeddings.store import matrix_get

    dataset, record = _dataset_and_record(dataset_id)
    if rebuild:
        shutil.rmtree(settings.VECTOR_ROOT / f"d{dataset.id}", ignore_errors=True)
    started = time.perf_counter()
    matrix = matrix_get(dataset=dataset, record=record)
    mapped = time.perf_counter() - started
    vector_files.warm(matrix.vectors)
    print(json.dumps({"seconds": time.perf_counter() - started, "mapped": mapped, "rows": len(matrix.sample_ids),
                      "bytes": matrix.nbytes, "load": _load()}))


def _smaps(pid, needle):
    """(process Rss, Pss, private KiB) and (mapping Rss, Private KiB) of the mappings whose path holds `needle`."""
    totals = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        totals[key] = int(rest.split()[0])
    mapping = {"Rss": 0, "Private": 0}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if not line.split(":")[0].isalpha() or "-" in line.split()[0]:
            inside = needle in line
            continue
        if inside and line.startswith(("Rss:", "Private_Clean:", "Private_Dirty:")):
            key = "Rss" if line.startswith("Rss") else "Private"
            mapping[key] += int(line.split()[1])
    return {"rss": totals["Rss"], "pss": totals["Pss"],
            "private": totals.get("Private_Clean", 0) + totals.get("Private_Dirty", 0),
            "matrix_rss": mapping["Rss"], "matrix_private": mapping["Private"]}


def child_hold(dataset_id):
    """Hold the matrix as a web process does (mapped, read, one score), report, wait for stdin to close."""
    import numpy as np

    from imagestudio.embeddings import vector_files
    from imagestudio.embeddings.store import matrix_get

    dataset, record = _dataset_and_record(dataset_id)
    matrix = matrix_get(dataset=dataset, record=record)
    vector_files.warm(matrix.vectors)
    matrix.score(matrix.features(np.array([1]))[0])
    print(json.dumps({"pid": os.getpid(), "bytes": matrix.nbytes}), flush=True)
    sys.stdin.read()


def child_django():
    print(json.dumps({"pid": os.getpid()}), flush=True)
    sys.stdin.read()


def child_lf_save(dataset_id):
    from imagestudio.embeddings.store import matrix_get
    from imagestudio.labeling.models import LabelingFunction
    from imagestudio.labeling.services import lf_create, lf_delete

    dataset, record = _dataset_and_record(dataset_id)
    matrix = matrix_get(dataset=dataset, record=record)  # mapped, as a web process holds it
    label_class = dataset.classes.order_by("id").first()
    LabelingFunction.objects.filter(dataset=dataset, name="bench-scale-all-vote").delete()
    started = time.perf_counter()
    lf = lf_create(dataset=dataset, user=None, label_class=label_class, name="bench-scale-all-vote",
                   type="similarity_image", config={"sample_id": int(matrix.sample_ids[3]), "encoder": "open_clip"},
                   low=0.0, high=1e-30)  # low < high: only a score in (0, 1e-30) would abstain
    seconds = time.perf_counter() - started
    votes = len(lf.votes_present) // 8 + len(lf.votes_absent) // 8
    lf_delete(lf=lf)
    print(json.dumps({"seconds": seconds, "votes": votes, "load": _load()}))


CHILDREN = {"split": child_split, "bare-split": child_bare_split, "cold": child_cold, "hold": child_hold,
            "django": child_django, "lf-save": child_lf_save}


# ---------------------------------------------------------------- the parent


def seed(args):
    from django.contrib.auth import get_user_model

    embedding_bench.ensure_checkpoint()
    big = _common.per_split_dataset(args.per_split)
    import samples_list_latency

    small = samples_list_latency.seeded_dataset(args.samples) or samples_list_latency.seed(args.samples)
    for dataset in (small, big):
        embedding_bench.seed_store(dataset, dataset.samples.count())
    user = get_user_model().objects.get(pk=big.created_by_id)
    return {"500K": small, "2M": big}, user


def http_preview(env, dataset, user, requests):
    import httpx

    token = _common.bench_token(user)
    port = _common.free_port()
    with open(ROOT / "bench" / "out-scale-gunicorn.log", "w") as log:
        server, _ = _common.start_server(env, port, log=log)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300,
                                  headers={"Authorization": f"Token {token}"})
            _common.wait_ready(client, server)
            allocated = client.post(f"/api/datasets/{dataset.id}/resources/", json={"encoder": "open_clip"})
            sample_id = dataset.samples.order_by("id").values_list("id", flat=True)[777]
            body = {"label_class": dataset.classes.order_by("id").first().name, "type": "similarity_image",
                    "config": {"sample_id": sample_id, "encoder": "open_clip"}, "low": 0.0, "high": 0.1}
            url = f"/api/datasets/{dataset.id}/lfs/preview/"
            first = client.post(url, json=body)
            if first.status_code != 200:
                raise SystemExit(f"preview answered {first.status_code}: {first.text[:300]}")
            runs = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.post(url, json=body)
                runs.append(time.perf_counter() - started)
                response.raise_for_status()
            client.delete(f"/api/datasets/{dataset.id}/resources/")
            memory = _common.proc_memory_kib(_common.worker_pids(server)[0])
            return {"p50": _common.percentile(runs, 50), "p95": _common.percentile(runs, 95),
                    "allocate_status": allocated.status_code, "worker_rss_kib": memory[0], "load": _load()}
        finally:
            _common.stop_server(server)


def memory(dataset):
    holders = []
    try:
        for section in ("hold", "hold", "django"):
            args = [sys.executable, __file__, "--child", section] + ([str(dataset.id)] if section == "hold" else [])
            process = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            holders.append((process, json.loads(process.stdout.readline())))
        return [_smaps(info["pid"], "vectors.npy") for _, info in holders], holders[0][1]["bytes"]
    finally:
        for process, _ in holders:
            process.stdin.close()
            process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-split", type=int, default=500_000)
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--with-list", action="store_true", help="run bench/samples_list_latency.py too")
    parser.add_argument("--with-export", action="store_true", help="run bench/export_bench.py too")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _django()
        section, *rest = args.child
        return CHILDREN[section](*map(int, rest))

    env = embedding_bench.configure()
    _common.setup_django()
    from django.db import connection

    _common.print_environment("scale benchmark (issue 17)", {
        "datasets": f"4 x {args.per_split:,} and {args.samples:,} samples, 512-d vectors",
        "postgres": _common.server_version(connection)})
    datasets, user = seed(args)
    rows = {}

    def record(name, column, value):
        rows.setdefault(name, {})[column] = value
        print(f"{name:<52} {column:>5}  {value}   (load {_load():.2f})", flush=True)

    scan, _ = scan_kernels.run_speed(args.samples, args.repeats)
    record("scan of 500K x 512 / best bare kernel", "500K",
           f"{statistics.median(scan['results']['Matrix.score (mapped files)']['runs']) * 1000:.1f} ms / "
           f"{scan['best_bare_ms']:.1f} ms ({scan['best_bare']}) = x{scan['ratio']:.2f} (target <= 1.3)")
    for column, dataset in datasets.items():
        _child("cold", dataset.id, 1)  # the files written from Postgres once, then
        built = _child("cold", dataset.id, 1)
        record("matrix files written from Postgres (first use)", column, f"{built['seconds']:.1f} s")
        cold = _child("cold", dataset.id, 0)
        record("cold allocation: new process maps + reads the files", column,
               f"{cold['seconds']:.2f} s for {cold['rows']:,} rows, {cold['bytes'] / 2**30:.2f} GiB "
               f"(target <= {TARGETS['cold_s']} s at 2M)")
        split = _child("split", dataset.id, args.repeats)
        bare = _child("bare-split", split["rows"], args.repeats)
        record("similarity preview of one split (dev), in-process", column,
               f"{split['preview'] * 1000:.0f} ms (scores_for {split['scores_for'] * 1000:.0f} ms); bare scan of "
               f"its {split['rows']:,} rows {bare['bare'] * 1000:.0f} ms: x{split['preview'] / bare['bare']:.2f} "
               f"(target <= {TARGETS['split']})")
        http = http_preview(env, dataset, user, args.requests)
        record("similarity preview, whole dataset, HTTP", column,
               f"p50 {http['p50'] * 1000:.0f} ms, p95 {http['p95'] * 1000:.0f} ms (target p50 <= "
               f"{TARGETS['http_p50_ms']} ms); web worker RSS {http['worker_rss_kib'] / 2**20:.2f} GiB")
        processes, matrix_bytes = memory(dataset)
        first, second, bare_django = processes
        record("web memory: process with the matrix / Django only", column,
               f"RSS {first['rss'] / 2**20:.2f} GiB, PSS {first['pss'] / 2**20:.2f} GiB / RSS "
               f"{bare_django['rss'] / 2**20:.2f} GiB")
        added = second["matrix_private"] * 1024 / matrix_bytes
        record("second process: matrix bytes of its own / matrix size", column,
               f"{second['matrix_private'] / 1024:.0f} MiB of {matrix_bytes / 2**20:.0f} MiB = {added:.1%} "
               f"(mapped {second['matrix_rss'] / 2**20:.2f} GiB shared; target < 10%)")
        save = _child("lf-save", dataset.id)
        record("first save of an LF (every sample votes)", column,
               f"{save['seconds']:.2f} s for {save['votes']:,} votes (target <= {TARGETS['lf_save_s']} s)")
    for flag, script, extra in ((args.with_list, "samples_list_latency.py", ["--per-split", str(args.per_split)]),
                                (args.with_export, "export_bench.py", [])):
        if flag:
            print(f"\n== bench/{script} {' '.join(extra)}", flush=True)
            subprocess.run([sys.executable, str(ROOT / "bench" / script), *extra], cwd=ROOT, env=env, check=False)
    print("\n== summary")
    for name, columns in rows.items():
        print(f"{name}\n    500K: {columns.get('500K', '-')}\n    2M:   {columns.get('2M', '-')}")
    _common.print_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())
