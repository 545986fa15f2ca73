#!/usr/bin/env bash
# Sets up and runs the test suite: SQLite by default, PostgreSQL when DATABASE_URL
# points there; installs nginx and its Lua module (Debian's nginx-light and
# libnginx-mod-http-lua), PgBouncer, Node and npm when missing, and the Node verifier's
# package (npm ci, package-lock.json). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-dev.txt
scripts/ensure-package.sh nginx nginx-light  # app_proxy is tested through nginx too
scripts/ensure-package.sh /usr/lib/nginx/modules/ngx_http_lua_module.so libnginx-mod-http-lua
scripts/ensure-package.sh /usr/sbin/pgbouncer pgbouncer  # PostgreSQL behind a pooler
scripts/ensure-package.sh node nodejs  # and its signatures verified in Node
scripts/ensure-package.sh npm npm
npm ci --silent
exec .venv/bin/python -m pytest "$@"
