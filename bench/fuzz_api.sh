#!/usr/bin/env bash
# The long schemathesis profile against a live server: gunicorn and a Celery worker on a throwaway Postgres
# database, authenticated, stateless phases and the stateful (links) phase; prints cases, 5xx and undocumented
# status codes (CI runs the bounded in-process profile: tests/api/test_fuzz_schema.py). See bench/fuzz_live.py.
# Usage: bash bench/fuzz_api.sh [--examples N (default 25)] [--scenarios N (default 300)] [--seed S] [--max-time S]
# Environment: DATABASE_URL (the fuzz database is its name + _fuzz), CELERY_BROKER_URL (unset: eager tasks).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/fuzz_live.py "$@"
