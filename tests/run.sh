#!/usr/bin/env bash
# The whole test suite from a fresh machine: a venv with the project and its dev tools, Postgres and
# Redis checked (and started when this machine has them installed but stopped), then pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.imagestudio-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "== installing the project and its dev extras into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$wanted" > "$stamp"
fi

export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/imagestudio}
export CELERY_BROKER_URL=${TEST_BROKER_URL:-redis://127.0.0.1:6379/15}
# Throttle counters in their own Redis database: tests clear it between them, never the broker's.
export CACHE_URL=${TEST_CACHE_URL:-redis://127.0.0.1:6379/14}
export IMAGESTUDIO_REQUIRE_INTEGRATION=${IMAGESTUDIO_REQUIRE_INTEGRATION:-1}

postgres_answers() {
  .venv/bin/python - "$DATABASE_URL" <<'PY' >/dev/null 2>&1
import sys, dj_database_url, psycopg
db = dj_database_url.parse(sys.argv[1])
psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
                dbname="postgres", connect_timeout=3).close()
PY
}
redis_answers() {
  .venv/bin/python -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()" \
    "$CELERY_BROKER_URL" >/dev/null 2>&1
}
wait_for() {
  for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done
  return 1
}

if ! postgres_answers; then
  echo "== Postgres does not answer; starting it"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_for postgres_answers || { echo "Postgres is unreachable at $DATABASE_URL" >&2; exit 1; }
fi
if ! redis_answers; then
  echo "== Redis does not answer; starting it"
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_for redis_answers || { echo "Redis is unreachable at $CELERY_BROKER_URL" >&2; exit 1; }
fi

echo "== pytest (Postgres: $DATABASE_URL, Redis: $CELERY_BROKER_URL)"
exec .venv/bin/python -m pytest "$@"
