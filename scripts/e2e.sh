#!/usr/bin/env bash
# End-to-end: installs nginx with its Lua module, Chromium and chromedriver (Debian
# packages) when missing, starts PostgreSQL when down, and runs e2e/ against gunicorn
# behind nginx on a fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-dev.txt

scripts/ensure-package.sh nginx nginx-light
scripts/ensure-package.sh /usr/lib/nginx/modules/ngx_http_lua_module.so libnginx-mod-http-lua
# Without Chromium only the Swagger UI tests are skipped (they say why), so a failed
# install is a warning, not the end of the run.
scripts/ensure-package.sh chromium chromium || echo "warning: Chromium did not install"
scripts/ensure-package.sh chromedriver chromium-driver \
    || echo "warning: chromedriver did not install"

started_postgresql=$(scripts/ensure-postgres.sh)
database="applications_e2e_$$"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $database"
cleanup() {
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
    # stop what this script started (gunicorn and nginx are stopped by the suite)
    if [ "$started_postgresql" = started ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main stop
    fi
}
trap cleanup EXIT
DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$database" \
    .venv/bin/python -m pytest -p no:cacheprovider e2e "$@"
