"""Shared set-up of the benchmarks: environment defaults, the bench database, Django, timing helpers."""

import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/imagestudio_bench"
DEFAULT_DATA_DIR = "/tmp/imagestudio-bench"
# Databases the benchmarks must never write to (the test suite's and the default app database).
FORBIDDEN_NAMES = ("imagestudio",)


def configure_environment(broker=False):
    """Environment defaults for a benchmark run; returns the env dict child processes should get too.
    Without `broker`, CELERY_BROKER_URL is removed and tasks run in-process, eagerly."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("IMAGESTUDIO_DATA_DIR", DEFAULT_DATA_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagestudio.settings")
    if not broker:
        os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # keep per-job log lines out of the figures
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    _ensure_database(os.environ["DATABASE_URL"])
    return dict(os.environ)


def _server_params(url):
    import dj_database_url

    db = dj_database_url.parse(url)
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(f"the benchmarks need Postgres, DATABASE_URL is {url!r}")
    name = db["NAME"]
    if name in FORBIDDEN_NAMES or name.startswith("test"):
        raise SystemExit(f"refusing to benchmark against the database {name!r}; use e.g. imagestudio_bench")
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"] or "postgres",
              "password": db["PASSWORD"] or None, "connect_timeout": 5}
    return name, params


def _ensure_database(url, recreate=False):
    """Create the bench database when it is missing (or drop it first); refuses test and app databases."""
    import psycopg
    from psycopg import sql

    name, params = _server_params(url)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            print(f"dropped database {name}")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def _schema_drift():
    """Tables or columns the models expect but the database lacks (migrations edited in place)."""
    from django.apps import apps
    from django.db import connection

    missing = []
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        for model in apps.get_models(include_auto_created=True):
            table = model._meta.db_table
            if table not in tables:
                missing.append(table)
                continue
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            missing += [f"{table}.{f.column}" for f in model._meta.local_concrete_fields if f.column not in columns]
    return missing


def setup_django(reset_db=False):
    """django.setup() and migrate the bench database (recreated when asked or when its schema drifted)."""
    import django
    from django.core.management import call_command
    from django.db import connections

    if reset_db:
        _ensure_database(os.environ["DATABASE_URL"], recreate=True)
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    drift = _schema_drift()
    if drift:
        # The bench database is disposable: rebuild it rather than benchmark a stale schema.
        print(f"the bench database does not match the models ({', '.join(drift[:5])}); recreating it")
        connections.close_all()
        _ensure_database(os.environ["DATABASE_URL"], recreate=True)
        call_command("migrate", interactive=False, verbosity=0)


def print_environment(title, extra=None):
    from django.conf import settings

    db = settings.DATABASES["default"]
    print(f"== {title}")
    print(f"python      {platform.python_version()} ({sys.executable})")
    print(f"platform    {platform.platform()}")
    print(f"cpu count   {os.cpu_count()}  (load avg {', '.join(f'{v:.2f}' for v in os.getloadavg())})")
    print(f"database    {db['ENGINE'].rsplit('.', 1)[-1]} {db['HOST']}:{db['PORT']}/{db['NAME']}")
    print(f"data dir    {settings.DATA_DIR}")
    print(f"code        {code_version()}")
    for key, value in (extra or {}).items():
        print(f"{key:<11} {value}")
    print()


def code_version():
    """The commit measured, and whether files outside bench/ differ from it (figures belong to a tree)."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench"], cwd=REPO,
                                 capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"
    return f"{commit}" + (f" + {len(changed)} changed files outside bench/" if changed else " (clean outside bench/)")


def percentile(values, pct):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def summarize_ms(seconds):
    """p50, p95, max in milliseconds of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return statistics.median(ms), percentile(ms, 95), max(ms)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def counters_check(dataset):
    """Compare the maintained counters of a dataset with a recount; returns a list of mismatch lines.

    Ground truth: as tests/api/test_annotations.py::assert_counts_exact does, the live (non-zero)
    GroundTruthCount rows against what `counts_rebuild` computes, but inside a transaction that is
    rolled back, so the check repairs nothing. Split counts: `Dataset.split_counts` against a GROUP BY.
    """
    from django.db import transaction
    from django.db.models import Count

    from imagestudio.annotations.models import GroundTruthCount
    from imagestudio.annotations.services import counts_rebuild
    from imagestudio.datasets.models import Dataset, Sample

    def snapshot(nonzero):
        rows = GroundTruthCount.objects.filter(label_class__dataset=dataset)
        return {(r.label_class_id, r.split): (r.present, r.absent) for r in rows if r.present or r.absent or not nonzero}

    mismatches = []
    with transaction.atomic():
        live = snapshot(nonzero=True)
        counts_rebuild(dataset=dataset)
        rebuilt = snapshot(nonzero=False)
        transaction.set_rollback(True)
    for key in sorted(set(live) | set(rebuilt)):
        if live.get(key) != rebuilt.get(key):
            mismatches.append(f"ground truth (class {key[0]}, {key[1]}): counters {live.get(key)} != "
                              f"recount {rebuilt.get(key)} (present, absent)")
    stored = Dataset.objects.values_list("split_counts", flat=True).get(pk=dataset.pk)
    actual = dict(Sample.objects.filter(dataset=dataset).values_list("split").annotate(n=Count("id")))
    for split in sorted(set(stored) | set(actual)):
        if stored.get(split, 0) != actual.get(split, 0):
            mismatches.append(f"split_counts[{split}] = {stored.get(split, 0)} != {actual.get(split, 0)} samples")
    return mismatches


def print_counters_check(dataset, label="counters"):
    """Run counters_check and print ok / the mismatches; returns True when consistent."""
    import time as _time

    started = _time.perf_counter()
    mismatches = counters_check(dataset)
    seconds = _time.perf_counter() - started
    if not mismatches:
        print(f"{label}: ok (split_counts and ground-truth counters equal a recount; checked in {seconds:.1f} s)")
        return True
    print(f"{label}: MISMATCH ({len(mismatches)})")
    for line in mismatches[:20]:
        print(f"  {line}")
    return False


# ---------------------------------------------------------------- gunicorn, shared by the HTTP benchmarks


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env, port, extra_env=None, threads=1, log=None, workers=1):
    """gunicorn with the bench environment: one worker, one thread by default, keep-alive (requests never queue);
    its output goes to the open file `log` when given."""
    import subprocess

    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "imagestudio.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "30",
               "--timeout", "300", "--log-level", "warning", "--chdir", str(REPO)]
    process = subprocess.Popen(command, env={**env, "DEBUG": "0", **(extra_env or {})}, cwd=REPO,
                               start_new_session=True, stdout=log, stderr=log)
    return process, " ".join(command[1:])


def wait_ready(client, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with code {process.returncode}")
        try:
            client.get("/api/jobs/?limit=1")
            return
        except Exception:  # not listening yet
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer within {timeout} s")


def stop_server(process):
    stop_process_group(process, timeout=15)  # its own session: the arbiter and its workers


def start_celery_worker(env, log):
    """A Celery worker (one process, every queue) on the broker of `env`, its queues purged first; None when `env`
    names no broker (tasks then run eagerly inside gunicorn)."""
    import subprocess

    if not env.get("CELERY_BROKER_URL"):
        return None
    celery = str(Path(sys.executable).with_name("celery"))
    queues = "default,embeddings,training"
    subprocess.run([celery, "-A", "imagestudio", "purge", "-f", "-Q", queues], env=env, cwd=REPO,
                   capture_output=True, check=False)
    return subprocess.Popen([celery, "-A", "imagestudio", "worker", "-Q", queues, "--concurrency", "1",
                             "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                            env=env, cwd=REPO, start_new_session=True, stdout=log, stderr=log)


def stop_process_group(process, timeout=30):
    """SIGTERM to a process started in its own session (and its children), SIGKILL after `timeout` s; None is a
    no-op."""
    import signal
    import subprocess

    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def worker_pids(process):
    """The gunicorn worker processes (children of the arbiter), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == process.pid:
                pids.append(int(entry.name))
    return pids


def proc_memory_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS"), values.get("VmHWM")


def psycopg_connect(autocommit=True):
    """A psycopg 3 connection to the bench database (the Django settings' one)."""
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                           dbname=db["NAME"], password=db["PASSWORD"] or None, autocommit=autocommit)


def bench_token(user):
    from imagestudio.accounts.services import token_for

    return token_for(user=user, name="bench")


def server_version(connection):
    connection.ensure_connection()
    number = connection.connection.info.server_version  # e.g. 150020
    return f"{number // 10000}.{number % 10000}"


def print_load(label="load avg at the end"):
    """The load average, so that a run disturbed by other work on a shared machine shows it."""
    print(f"{label}: {', '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")


def vector_set_state(dataset, record):
    """(the EmbeddingSet of the dataset under the encoder or None, the vector rows actually stored): a bench
    reuses seeded vectors only when both agree with the count it wants."""
    from django.db import connection

    from imagestudio.embeddings.models import EmbeddingSet

    state = EmbeddingSet.objects.filter(dataset=dataset, encoder=record).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM embeddings_embedding e JOIN datasets_sample s ON s.id = e.sample_id "
                       "WHERE e.encoder_id = %s AND s.dataset_id = %s", [record.id, dataset.id])
        return state, cursor.fetchone()[0]


# ---------------------------------------------------------------- the list benchmarks' dataset

LIST_SEED_MARK = "seeded by bench/samples_list_latency.py v1"
LIST_USERNAME = "bench-latency"
LIST_CLASSES = ["cat", "dog", "bird"]
LIST_GT_CLASS = "cat"  # ~20% of samples have ground truth for it, half PRESENT, half ABSENT
LIST_TAG = "blurry"  # on ~5% of samples
LIST_RARE_WORD = "zebra"  # in ~1% of captions; no other caption word shares its trigrams
LIST_SPLITS = ("train", "dev", "valid", "test")
_VOCABULARY = (
    "a the small large red green blue yellow black white old young dog cat bird car tree house street "
    "river mountain beach field city night day sunny cloudy snow rain person people child man woman "
    "sitting standing running walking near under over next to in on with playing looking photo image "
    "blurry bright dark close view"
).split()


def per_split_name(per_split):
    """The name of the dataset of `per_split_dataset`: e.g. bench-samples-4x500000."""
    return f"bench-samples-{len(LIST_SPLITS)}x{per_split}"


def list_dataset_seeded(name):
    """The completely seeded list dataset of that name, or None."""
    from imagestudio.datasets.models import Dataset

    return Dataset.objects.filter(name=name, description=LIST_SEED_MARK).first()


def per_split_dataset(per_split, reseed=False):
    """The dataset of `per_split` samples in each of train, dev, valid and test (4 x 500,000 is the product's
    largest: 2,000,000), seeded as `seed_list_dataset` does, or reused when already seeded."""
    import random

    name = per_split_name(per_split)
    dataset = None if reseed else list_dataset_seeded(name)
    if dataset is not None:
        print(f"reusing dataset {dataset.id} ({name})")
        return dataset
    print(f"seeding {name} ({len(LIST_SPLITS) * per_split:,} samples)")
    splits = [split for split in LIST_SPLITS for _ in range(per_split)]
    random.Random(7).shuffle(splits)  # interleaved as a manifest import would leave them
    return seed_list_dataset(name=name, splits=splits)


def seed_list_dataset(*, name, splits, seed_value=20240611):
    """Create the dataset `name` with one sample per item of `splits` (its split), caption metadata, ground truth
    for LIST_GT_CLASS and the tag LIST_TAG; bulk-loaded with COPY in one transaction (VACUUM ANALYZE after:
    `vacuum_analyze`). Returns the dataset, marked as completely seeded."""
    import hashlib
    import json
    import random
    from datetime import UTC, datetime

    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from imagestudio.annotations.services import counts_rebuild
    from imagestudio.datasets.models import Dataset, LabelClass, Tag
    from imagestudio.datasets.services import dataset_create, search_text

    rng = random.Random(seed_value)
    user, _ = get_user_model().objects.get_or_create(username=LIST_USERNAME)
    started = time.perf_counter()
    with transaction.atomic():
        # A leftover without the completion mark cannot exist (one transaction), but clear stale names anyway.
        for stale in Dataset.objects.filter(name=name):
            _delete_sample_rows(stale.id)
            stale.delete()
        dataset = dataset_create(user=user, name=name, classes=LIST_CLASSES)
        label_class = LabelClass.objects.get(dataset=dataset, name=LIST_GT_CLASS)
        tag = Tag.objects.create(dataset=dataset, name=LIST_TAG)
        now = datetime.now(UTC)
        split_counts = {}
        columns = ("split, external_id, file_name, original, thumbnail, width, height, format, bytes, sha256, "
                   "metadata, search_text, created_at, dataset_id")
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY datasets_sample ({columns}) FROM STDIN") as copy:
                for i, split in enumerate(splits):
                    split_counts[split] = split_counts.get(split, 0) + 1
                    words = rng.choices(_VOCABULARY, k=rng.randint(5, 9))
                    if rng.random() < 0.01:
                        words.insert(rng.randrange(len(words) + 1), LIST_RARE_WORD)
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
            with cursor.copy("COPY annotations_annotation (value, version, updated_at, label_class_id, sample_id, "
                             "updated_by_id) FROM STDIN") as copy:
                for sample_id in ids:
                    if rng.random() < 0.2:
                        value = "PRESENT" if rng.random() < 0.5 else "ABSENT"
                        copy.write_row((value, 1, now, label_class.id, sample_id, user.id))
            with cursor.copy("COPY datasets_sample_tags (sample_id, tag_id) FROM STDIN") as copy:
                for sample_id in ids:
                    if rng.random() < 0.05:
                        copy.write_row((sample_id, tag.id))
            print(f"  annotations and tags {time.perf_counter() - started:6.1f} s")
        counts_rebuild(dataset=dataset)  # the per-class, per-split ground-truth counters
        Dataset.objects.filter(pk=dataset.pk).update(split_counts=split_counts, description=LIST_SEED_MARK)
    print(f"  seeded               {time.perf_counter() - started:6.1f} s")
    return list_dataset_seeded(name)


def _delete_sample_rows(dataset_id):
    from django.db import connection

    with connection.cursor() as cursor:
        inner = "SELECT id FROM datasets_sample WHERE dataset_id = %s"
        for table in ("annotations_annotation", "annotations_annotationevent", "datasets_sample_tags",
                      "datasets_comment", "datasets_resamplemember"):
            cursor.execute(f"DELETE FROM {table} WHERE sample_id IN ({inner})", [dataset_id])  # noqa: S608
        cursor.execute("DELETE FROM datasets_sample WHERE dataset_id = %s", [dataset_id])


def vacuum_analyze():
    """VACUUM (ANALYZE) the tables the list reads: fresh statistics, and a visibility map so that counts
    can use index-only scans, as autovacuum would give a dataset in steady use. Quick when nothing changed."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("datasets_sample", "annotations_annotation", "datasets_sample_tags"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    print(f"vacuum analyze {time.perf_counter() - started:.1f} s")


def vector_set_written(dataset, record, count):
    """Record vectors a bench wrote straight into the table: the set's count, a new version and generation, so no
    process's cache or matrix files of earlier vectors are taken for these."""
    import uuid

    from django.db.models import F

    from imagestudio.embeddings.models import EmbeddingSet

    EmbeddingSet.objects.get_or_create(dataset=dataset, encoder=record)
    EmbeddingSet.objects.filter(dataset=dataset, encoder=record).update(count=count, version=F("version") + 1,
                                                                         generation=uuid.uuid4())
