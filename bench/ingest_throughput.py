#!/usr/bin/env python
"""Archive import throughput: the real import pipeline against a bare Pillow decode + thumbnail loop.

Both sides read the same JPEGs from the same zip. The bare loop only decodes and thumbnails; the
pipeline (imports.import_start with an archive, run eagerly in-process) also stages the archive, validates,
hashes, encodes the thumbnail JPEG, writes both blobs and inserts the rows in batches.
Target: pipeline images/s >= 0.6 x bare loop images/s.

    .venv/bin/python bench/ingest_throughput.py            # 5,000 images
    .venv/bin/python bench/ingest_throughput.py --count 500
"""

import argparse
import io
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_RATIO = 0.6
WIDTH, HEIGHT = 640, 480
GENERATOR_VERSION = 1  # bump when the generated images change, to invalidate cached archives


# ---------------------------------------------------------------- test data


def _make_photo(index, noise_tile):
    """A 640x480 'photo-like' JPEG: smooth colour waves, random shapes, slight blur and sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    angle, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 3.0)
    base = np.empty((HEIGHT, WIDTH, 3), np.float32)
    for channel in range(3):
        lo, hi = rng.uniform(0, 255, 2)
        t = np.cos(angle + channel) * xx / WIDTH + np.sin(angle + channel) * yy / HEIGHT
        base[..., channel] = lo + (hi - lo) * (0.5 + 0.5 * np.sin(freq * np.pi * t))
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 15))):
        x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        box = (x0, y0, x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(0, 2) else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    # Noise: a random crop of a shared tile (cheap); content is distinct anyway through the shapes.
    ox, oy = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
    noise = noise_tile[oy:oy + HEIGHT, ox:ox + WIDTH, None]
    pixels = (np.asarray(image, np.int16) + noise).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _make_range(start, stop):
    import numpy as np

    tile = np.random.default_rng(12345).normal(0, 6, (2 * HEIGHT, 2 * WIDTH)).astype(np.int16)
    return [(i, _make_photo(i, tile)) for i in range(start, stop)]


def build_archive(count, cache_dir):
    """The cached zip of `count` distinct JPEGs, generated on first use (in parallel processes)."""
    path = Path(cache_dir) / f"photos-{count}-v{GENERATOR_VERSION}.zip"
    if path.exists():
        print(f"archive     {path} (cached, {path.stat().st_size / 2**20:.1f} MiB)")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    step = 250
    partial = path.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        chunks = [pool.submit(_make_range, lo, min(lo + step, count)) for lo in range(0, count, step)]
        for chunk in chunks:
            for index, data in chunk.result():
                archive.writestr(f"photos/{index // 1000:03d}/img_{index:06d}.jpg", data)
    partial.rename(path)
    print(f"archive     {path} (generated in {time.perf_counter() - started:.1f} s, "
          f"{path.stat().st_size / 2**20:.1f} MiB)")
    return path


# ---------------------------------------------------------------- the two sides


def load_average():
    return f"load {os.getloadavg()[0]:.2f}"


def bare_loop(path, threads):
    """Read every member from the zip, decode it and make a 256x256 thumbnail, in `threads` threads;
    returns (count, seconds)."""
    from PIL import Image

    def one(archive, info):
        data = archive.read(info)
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((256, 256))

    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        started = time.perf_counter()
        if threads <= 1:
            for info in members:
                one(archive, info)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda info: one(archive, info), members))
        return len(members), time.perf_counter() - started


def pipeline(path, count, keep, profile):
    """The real import of the archive into a fresh dataset; returns (job, seconds of the whole call)."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imagestudio.datasets.imports import import_start
    from imagestudio.datasets.services import dataset_create, dataset_delete
    from imagestudio.jobs.models import JobStatus

    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    dataset = dataset_create(user=user, name=f"bench-ingest-{count}-{int(time.time())}", classes=["cat"])
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    job = import_start(dataset=dataset, user=user, archive=upload, split="train")
    seconds = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        print("\n-- cProfile of the pipeline (main thread only; validation runs in pool threads)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    job.refresh_from_db()
    result = job.result or {}
    ok = job.status == JobStatus.SUCCEEDED and result.get("created") == count
    if not ok:
        print(f"!! import did not succeed as expected: status={job.status} error={job.error!r} "
              f"result={ {k: result.get(k) for k in ('total', 'created', 'duplicates', 'errors')} }")
        print(f"   first errors: {result.get('error_files', [])[:5]}")
    if not keep:
        dataset_delete(dataset=dataset)
    return job, seconds, ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="images in the archive (default 5000)")
    parser.add_argument("--cache-dir", default="/tmp/imagestudio-bench-cache",
                        help="where the generated archive is cached between runs")
    parser.add_argument("--keep", action="store_true", help="keep the imported dataset (default: delete it)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the pipeline's main thread")
    parser.add_argument("--reset-db", action="store_true", help="drop and recreate the bench database first")
    args = parser.parse_args()

    _common.configure_environment()
    _common.setup_django(reset_db=args.reset_db)
    from django.conf import settings

    _common.print_environment("ingest throughput", {
        "images": args.count,
        "INGEST_THREADS": f"{settings.INGEST_THREADS} (pipeline validates in a thread pool of this size)",
        "THUMBNAIL": settings.THUMBNAIL_SIZE,
    })
    path = build_archive(args.count, args.cache_dir)

    threads = max(1, settings.INGEST_THREADS)
    bare_label = f"bare loop ({threads} threads)"

    def row(label, seconds, note=""):
        print(f"{label:<34}{n / seconds:8.1f} images/s   ({seconds:.1f} s{note}; {load_average()})")

    # Bare loop before and after the pipeline: the machine is shared, so drift shows up as a gap.
    n, bare_before = bare_loop(path, threads)
    if n != args.count:
        raise SystemExit(f"the archive holds {n} images, expected {args.count}")
    row(bare_label, bare_before)

    job, seconds, ok = pipeline(path, args.count, args.keep, args.profile)
    inner = (job.result or {}).get("seconds")
    row(f"pipeline ({threads} threads)", seconds,
        f", of which import_run {inner} s; staging and enqueueing {seconds - (inner or 0):.1f} s")

    _, bare_after = bare_loop(path, threads)
    row(f"{bare_label} again", bare_after)
    _, bare_single = bare_loop(path, 1)
    row("bare loop (1 thread, info)", bare_single)

    bare_rate = n / ((bare_before + bare_after) / 2)
    ratio = (n / seconds) / bare_rate
    print()
    print(f"ratio pipeline / bare loop, both {threads} threads (mean of the two bare runs): {ratio:.2f}  "
          f"(target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print(f"ratio pipeline / bare loop with 1 thread (info): {(n / seconds) / (n / bare_single):.2f}")
    print(f"import job {job.id}: status {job.status}, created {(job.result or {}).get('created')}"
          f" of {args.count} {'(ok)' if ok else '(FAILED)'}")
    _common.print_load()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
