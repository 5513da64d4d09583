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


def configure_environment():
    """Environment defaults for a benchmark run; returns the env dict child processes should get too."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("IMAGESTUDIO_DATA_DIR", DEFAULT_DATA_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagestudio.settings")
    os.environ.pop("CELERY_BROKER_URL", None)  # tasks run in-process, eagerly
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
    for key, value in (extra or {}).items():
        print(f"{key:<11} {value}")
    print()


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
