#!/usr/bin/env bash
# The long schemathesis profile (CI runs the same test with 8 examples per operation).
# Usage: bash bench/fuzz_api.sh [examples per operation, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_EXAMPLES=${1:-300} exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/api/test_fuzz_schema.py
