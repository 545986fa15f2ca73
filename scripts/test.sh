#!/usr/bin/env bash
# Sets up and runs the test suite: SQLite by default, PostgreSQL when DATABASE_URL
# points there; installs nginx (Debian's nginx-light) when missing. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-dev.txt
scripts/ensure-package.sh nginx nginx-light  # app_proxy is tested through nginx too
exec .venv/bin/python -m pytest "$@"
