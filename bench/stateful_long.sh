#!/usr/bin/env bash
# The long profile of tests/api/test_stateful.py: many more random interleavings of API steps, each followed by
# the invariant checks. STATEFUL_EXAMPLES (default 200) and STATEFUL_STEPS (default 30) size it; the test's
# database and broker come from the environment as for the test suite (see tests/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export STATEFUL_EXAMPLES="${STATEFUL_EXAMPLES:-200}" STATEFUL_STEPS="${STATEFUL_STEPS:-30}"
exec "$PYTHON" -m pytest tests/api/test_stateful.py -q -p no:cacheprovider "$@"
