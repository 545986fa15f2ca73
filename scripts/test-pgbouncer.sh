#!/usr/bin/env bash
# The test suite behind a PgBouncer in transaction mode (Debian's package, its usual
# settings), on a fresh database of the PostgreSQL on 127.0.0.1:5432: DATABASE_URL through
# the pooler, DATABASE_LISTEN_URL straight to PostgreSQL (docs/deployment.md). Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-dev.txt
scripts/ensure-package.sh /usr/sbin/pgbouncer pgbouncer
scripts/ensure-postgres.sh >/dev/null
database="applications_pgbouncer_$$"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $database"
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"' EXIT
.venv/bin/python -m harness.pgbouncer "$database" scripts/test.sh "$@"
