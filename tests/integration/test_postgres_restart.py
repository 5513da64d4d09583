"""Postgres restarted, then stopped, under a running web process: the first request after a restart succeeds (the
process's persistent connection is checked and replaced), a request while the database is down answers a prompt
503 in the API's error shape, and everything works again once it is back.

The machine's Postgres is shared with other test runs, so this test runs its own private cluster (initdb in a
temporary directory, a free port) and a `manage.py runserver --nothreading` against it: one thread serves every
request, so its database connection persists across requests (CONN_MAX_AGE), as in a gunicorn sync worker.
"""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "imagestudio"


def postgres_bindir():
    """The newest installed server's binaries (Debian keeps them off PATH), or PG_BINDIR."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throwaway cluster: trust authentication, listening on 127.0.0.1 only. initdb refuses to run as root, so
    as root the cluster belongs to the `postgres` account (run through runuser)."""

    def __init__(self, bindir):
        self.bindir, self.port = bindir, free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="imagestudio-pg-"))
        self.data = self.directory / "data"
        self.as_user = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, tool, *args, timeout=60):
        return subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=timeout, check=True)

    def initdb(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                  timeout=120)

    def pg_ctl(self, action, *args):
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
                   "-c max_connections=20 -c shared_buffers=16MB")
        return self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", "-o", options,
                         "-l", str(self.directory / "server.log"), *args)

    def sql(self, statement, database="postgres"):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True,
                             connect_timeout=5) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def log(self):
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def destroy(self):
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m",
                            "immediate", "-w"], capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres():
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("no Postgres server binaries (initdb, pg_ctl) on this machine; set PG_BINDIR")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' account to own a private cluster (initdb refuses root)")
    server = PrivatePostgres(bindir)
    try:
        server.initdb()
        server.pg_ctl("start")
        server.sql(f"CREATE DATABASE {DATABASE}")
        yield server
    finally:
        server.destroy()


class WebProcess:
    """`manage.py runserver --noreload --nothreading` against the private cluster (tasks in-process)."""

    def __init__(self, database_url, directory):
        self.port, self.log_path = free_port(), directory / "web.log"
        self.env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": "memory://",
                    "IMAGESTUDIO_DATA_DIR": str(directory / "data"), "MEDIA_ROOT": str(directory / "media"),
                    "DEBUG": "0", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.env.pop("IMAGESTUDIO_PRODUCTION", None)
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args, **env):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **env},
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self):
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--nothreading", f"127.0.0.1:{self.port}"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/api/datasets/", timeout=5).status_code == 401:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the web process did not answer: {self.output()}")

    def output(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None:
            self.log.close()


@pytest.fixture
def web(private_postgres, tmp_path):
    process = WebProcess(private_postgres.url, tmp_path)
    process.manage("migrate", "--noinput")
    process.manage("createsuperuser", "--noinput", "--username", "pat", "--email", "pat@example.com",
                   DJANGO_SUPERUSER_PASSWORD="pat-password-123")
    process.start()
    yield process
    process.stop()


def web_connections(postgres):
    """Backends of the web process (client connections to the app's database other than this probe)."""
    return postgres.sql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{DATABASE}' "
                        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'", database=DATABASE)


def test_service_recovers_from_a_postgres_restart_and_answers_503_while_it_is_down(private_postgres, web):
    with httpx.Client(base_url=web.url, timeout=30) as anonymous:
        signed_in = anonymous.post("/api/auth/token/", json={"username": "pat", "password": "pat-password-123"})
    assert signed_in.status_code == 200, signed_in.text
    with httpx.Client(base_url=web.url, timeout=30,
                      headers={"Authorization": f"Token {signed_in.json()['token']}"}) as api:
        created = api.post("/api/datasets/", json={"name": "Before", "classes": ["cat"]})
        assert created.status_code == 201, created.text
        assert api.get("/api/datasets/").json()["count"] == 1
        # The web process keeps one persistent connection between requests: the one the restart will break.
        before = web_connections(private_postgres)
        assert len(before) == 1, before

        private_postgres.pg_ctl("restart", "-m", "fast")
        assert web_connections(private_postgres) == []  # the old backend is gone; nothing reconnected yet
        after = api.get("/api/datasets/")  # the very first request after the restart
        assert after.status_code == 200, (after.text, web.output())
        assert [d["name"] for d in after.json()["results"]] == ["Before"]
        assert api.post("/api/datasets/", json={"name": "After restart"}).status_code == 201
        reconnected = web_connections(private_postgres)
        assert len(reconnected) == 1 and reconnected != before, reconnected

        private_postgres.pg_ctl("stop", "-m", "fast")
        for request in (lambda: api.get("/api/datasets/"), lambda: api.post("/api/datasets/", json={"name": "X"}),
                        lambda: api.get(f"/api/datasets/{created.json()['id']}/samples/")):
            started = time.monotonic()
            down = request()
            assert time.monotonic() - started < 15, "a request while the database is down must not hang"
            assert down.status_code == 503, (down.status_code, down.text[:500], web.output())
            assert down.headers["content-type"].startswith("application/json")
            assert down.json()["code"] == "database_unavailable" and "database" in down.json()["detail"].lower()
            assert int(down.headers["Retry-After"]) > 0

        private_postgres.pg_ctl("start")
        back = api.get("/api/datasets/")
        assert back.status_code == 200, (back.text, web.output())
        assert sorted(d["name"] for d in back.json()["results"]) == ["After restart", "Before"]
        assert api.post("/api/datasets/", json={"name": "Back"}).status_code == 201
    assert web.process.poll() is None, web.output()
