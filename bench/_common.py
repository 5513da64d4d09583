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
