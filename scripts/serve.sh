#!/usr/bin/env bash
# Sets up and runs the service on SQLite (or DATABASE_URL): installs, migrates, prints a
# staff token (the same one on every run while it works), then serves with gunicorn on
# ${HOST:-127.0.0.1}:${PORT:-5000}. app_proxy signs with a development key made once and
# kept in instance/ (unless APP_PROXY_SIGNING_KEY is set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements.txt
export FLASK_APP=wsgi
mkdir -p instance
key_file=instance/development-signing-key
if [ -z "${APP_PROXY_SIGNING_KEY:-}" ]; then
    if [ ! -s "$key_file" ]; then
        (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' >"$key_file")
    fi
    APP_PROXY_SIGNING_KEY=$(cat "$key_file")
    export APP_PROXY_SIGNING_KEY
    key_from="APP_PROXY_SIGNING_KEY=\$(cat $key_file) "
else
    key_from=""
fi
.venv/bin/flask db upgrade
token=$(.venv/bin/flask create-token "${ADMIN_USERNAME:-admin}" --staff \
    --key-file instance/staff-token | tail -n 1)
address="${HOST:-127.0.0.1}:${PORT:-5000}"
echo
echo "Applications API listening on http://$address/api/v1/"
echo "Swagger UI:   http://$address/api/v1/docs/"
echo "Staff token:  $token"
echo "Try:          curl -H 'Authorization: Token $token' http://$address/api/v1/applications/"
echo "An application's signing key, for its backend (docs/app-proxy.md):"
echo "              ${key_from}.venv/bin/flask --app wsgi app-proxy-key APP_ID"
echo
GUNICORN_BIND="$address" exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
