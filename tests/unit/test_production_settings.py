"""Production settings: `check --deploy` is clean with production variables, and a missing secret is refused."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "IMAGESTUDIO_PRODUCTION")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", IMAGESTUDIO_PRODUCTION="1", DEBUG="0",
                    SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="labels.example.com",
                    IMAGESTUDIO_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret(tmp_path):
    result = manage("check", IMAGESTUDIO_PRODUCTION="1", DEBUG="0", IMAGESTUDIO_DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_a_negative_token_lifetime_is_refused(tmp_path):
    result = manage("check", TOKEN_TTL_DAYS="-1", IMAGESTUDIO_DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "TOKEN_TTL_DAYS must be 0" in result.stderr


def test_security_headers_on_responses(client):
    response = client.get("/api/schema/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_a_database_that_never_answers_fails_in_seconds_not_forever(tmp_path):
    """A Postgres host that accepts the TCP connection and then says nothing (hung, or a black-holing proxy):
    connecting gives up after DB_CONNECT_TIMEOUT instead of hanging the process."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes handshakes; nothing ever reads or answers
    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", "from django.db import connection; connection.ensure_connection()"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/x",
                 "DB_CONNECT_TIMEOUT": "2", "IMAGESTUDIO_DATA_DIR": str(tmp_path)})
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert result.returncode != 0 and "OperationalError" in result.stderr, result.stderr[-2000:]
    assert elapsed < 30  # connect timeout 2 s (libpq may try twice, e.g. with and without SSL), plus start-up


def embedded_key(data_dir):
    result = manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                    IMAGESTUDIO_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's own notes


def test_the_embedded_default_signs_with_a_random_key_kept_in_its_data_directory(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:  # three processes starting at once agree on one key
        keys = set(pool.map(embedded_key, [tmp_path / "a"] * 3))
    assert len(keys) == 1 and len(key := keys.pop()) >= 50
    stored = tmp_path / "a" / "secret_key"
    assert stored.read_text() == key and stored.stat().st_mode & 0o777 == 0o600
    assert embedded_key(tmp_path / "a") == key  # kept across restarts: signed URLs stay valid
    assert embedded_key(tmp_path / "b") not in (key, "")  # another installation, another key
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == ["secret_key"]
