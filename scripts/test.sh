#!/usr/bin/env bash
# Sets up and runs the test suite: SQLite by default, PostgreSQL when DATABASE_URL
# points there. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
