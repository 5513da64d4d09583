#!/usr/bin/env python
"""The scan sharded across processes, as README's "Past one machine" describes it, simulated on this host: --shards
worker processes each map the dataset's matrix files and own some of its splits (the files already group rows by
split); a coordinator sends each query to all, gathers every shard's (ids, scores), merges them in id order and
bins them as a preview does. Compared with one process scanning the whole matrix, each timed alone (never both
at once), with the load average; the merged scores are checked against the single process's.

Shards here share one host's 2 cores and page cache, so the figure shows the fan-out's overhead and that the
merge is exact, not a speed-up; on separate hosts each shard reads only its own rows.

    .venv/bin/python bench/shard_scan.py                        # the 4 x 500,000 dataset of bench/scale.py
    .venv/bin/python bench/shard_scan.py --per-split 50000 --shards 2 --repeats 10
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import embedding_bench  # noqa: E402

DIM = 512


def _matrix(dataset_id):
    embedding_bench.configure()
    import django

    django.setup()
    from imagestudio.datasets.models import Dataset
    from imagestudio.embeddings.store import matrix_get, record_for

    return matrix_get(dataset=Dataset.objects.get(pk=dataset_id), record=record_for("open_clip"))


def shard(dataset_id, codes):
    """Serve queries on stdin (DIM float32) with (count, ids, scores) of the owned splits on stdout."""
    import numpy as np

    matrix = _matrix(dataset_id)
    owned = [int(code) for code in codes.split(",")]
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    while query := sys.stdin.buffer.read(DIM * 4):
        vector = np.frombuffer(query, dtype=np.float32)
        parts = [matrix.score(vector, split=code) for code in owned]
        ids = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        out.write(struct.pack("<q", len(ids)) + ids.tobytes() + scores.astype(np.float32).tobytes())
        out.flush()


def single(dataset_id, repeats):
    """One process, the whole matrix: time per query, and the scores of the first query for the check."""
    import numpy as np

    matrix = _matrix(dataset_id)
    queries = _queries(matrix, repeats)
    for query in queries[:3]:
        matrix.score(query)
    runs = []
    for query in queries:
        started = time.perf_counter()
        matrix.score(query)
        runs.append(time.perf_counter() - started)
    np.save("/tmp/shard-scan-single.npy", matrix.score(queries[0])[1])
    print(json.dumps({"p50": statistics.median(runs), "rows": len(matrix.sample_ids), "load": os.getloadavg()[0]}))


def _queries(matrix, count):
    import numpy as np

    return [matrix.features(np.array([i * 997 % len(matrix.sample_ids)]))[0] for i in range(count)]


def coordinate(dataset_id, shards, repeats):
    import numpy as np

    from imagestudio.labeling import metrics

    matrix = _matrix(dataset_id)
    codes = sorted({int(c) for c in np.unique(matrix.splits)})
    owned = [codes[i::shards] for i in range(shards)]
    workers = [subprocess.Popen([sys.executable, __file__, "--shard", str(dataset_id), ",".join(map(str, own))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE) for own in owned]
    for worker in workers:
        assert worker.stdout.read(1) == b"R"

    def ask(query):
        for worker in workers:
            worker.stdin.write(query.astype(np.float32).tobytes())
            worker.stdin.flush()
        ids, scores = [], []
        for worker in workers:
            (count,) = struct.unpack("<q", worker.stdout.read(8))
            ids.append(np.frombuffer(worker.stdout.read(8 * count), dtype=np.int64))
            scores.append(np.frombuffer(worker.stdout.read(4 * count), dtype=np.float32))
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        order = np.argsort(ids, kind="stable")
        ids, scores = ids[order], scores[order]
        metrics.bin_scores(scores, np.zeros(len(scores), dtype=np.int8), 40)  # what a preview does next
        return ids, scores

    queries = _queries(matrix, repeats)
    try:
        for query in queries[:3]:
            ask(query)
        runs = []
        for query in queries:
            started = time.perf_counter()
            ask(query)
            runs.append(time.perf_counter() - started)
        ids, scores = ask(queries[0])
    finally:
        for worker in workers:
            worker.stdin.close()
            worker.wait(timeout=60)
    assert np.array_equal(ids, matrix.sample_ids)
    return {"p50": statistics.median(runs), "owned": owned, "scores": scores, "load": os.getloadavg()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-split", type=int, default=500_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--shard", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shard:
        return shard(int(args.shard[0]), args.shard[1])
    if args.single:
        return single(args.single, args.repeats)
    import numpy as np

    embedding_bench.configure()
    _common.setup_django()
    dataset = _common.list_dataset_seeded(_common.per_split_name(args.per_split))
    if dataset is None:
        raise SystemExit(f"no seeded {_common.per_split_name(args.per_split)}: run bench/scale.py first")
    out = subprocess.run([sys.executable, __file__, "--single", str(dataset.id), "--repeats", str(args.repeats)],
                         capture_output=True, text=True, check=True)
    alone = json.loads(out.stdout.strip().splitlines()[-1])
    sharded = coordinate(dataset.id, args.shards, args.repeats)
    difference = float(np.max(np.abs(sharded["scores"] - np.load("/tmp/shard-scan-single.npy"))))
    print(f"== scan of dataset {dataset.id} ({alone['rows']:,} rows x {DIM}), median of {args.repeats} queries")
    print(f"one process, whole matrix            {alone['p50'] * 1000:7.1f} ms   (load {alone['load']:.2f})")
    print(f"{args.shards} shard processes by split {sharded['owned']}, merged in id order and binned "
          f"{sharded['p50'] * 1000:7.1f} ms   (load {sharded['load']:.2f})")
    print(f"merged scores vs one process: same ids in the same order; max |difference| {difference:.1e} "
          f"(each shard centres its own product: within the scan's precision)")
    _common.print_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())
