#!/usr/bin/env bash
# Starts the local PostgreSQL cluster when 127.0.0.1:5432 does not answer, and waits
# until it does. Prints "started" when it started it (so the caller may stop it again).
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
fi
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start >&2
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
pg_isready -q -h 127.0.0.1 -p 5432
echo started
