#!/usr/bin/env bash
# Sets up and runs the service on SQLite (or DATABASE_URL): installs, migrates, prints a
# staff token, then serves with gunicorn on ${HOST:-127.0.0.1}:${PORT:-5000}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements.txt
export FLASK_APP=wsgi
.venv/bin/flask db upgrade
token=$(.venv/bin/flask create-token "${ADMIN_USERNAME:-admin}" --staff | tail -n 1)
address="${HOST:-127.0.0.1}:${PORT:-5000}"
echo
echo "Applications API listening on http://$address/api/v1/"
echo "Swagger UI:   http://$address/api/v1/docs/"
echo "Staff token:  $token"
echo "Try:          curl -H 'Authorization: Token $token' http://$address/api/v1/applications/"
echo
GUNICORN_BIND="$address" exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
