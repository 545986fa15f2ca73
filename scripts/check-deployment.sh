#!/usr/bin/env bash
# check-deployment.sh URL [TOKEN [APP_ID]]: checks a running deployment from outside, as
# its users reach it (URL: the nginx site, e.g. https://apps.example.com):
# - the healthcheck answers, database included;
# - with TOKEN, the API answers it (a list of applications);
# - with APP_ID, a call through app_proxy reaches that application's backend: any answer
#   but the proxy's own refusals (404, 502, 503, 504 in its JSON error shape), which are
#   printed with what they mean.
# Exits 0 when every check passed, 1 at the first that did not.
set -euo pipefail
url=${1:?usage: check-deployment.sh URL [TOKEN [APP_ID]]}
url=${url%/}
token=${2:-}
app_id=${3:-}
body=$(mktemp)
trap 'rm -f "$body"' EXIT

call() {  # call PATH [curl options...]: prints the status, the body goes to $body
    local path=$1
    shift
    curl -sS -o "$body" -w '%{http_code}' "$@" "$url$path" || echo 000
}

message() {  # the JSON error's message, if the body is one
    python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1])).get("message", ""))
except Exception:
    print("")' "$body"
}

status=$(call /api/v1/healthcheck/)
if [ "$status" != 200 ]; then
    echo "FAILED: healthcheck answered $status: $(message)" >&2
    exit 1
fi
echo "ok: healthcheck (service and database)"

[ -n "$token" ] || exit 0
status=$(call "/api/v1/applications/?limit=1" -H "Authorization: Token $token")
if [ "$status" != 200 ]; then
    echo "FAILED: the API answered $status: $(message)" >&2
    exit 1
fi
echo "ok: the API answers the token"

[ -n "$app_id" ] || exit 0
status=$(call "/api/v1/app_proxy/$app_id/" -H "Authorization: Token $token")
said=$(message)
case "$status" in
    404 | 502 | 503 | 504)
        if [ -n "$said" ]; then
            echo "FAILED: app_proxy answered $status: $said" >&2
            case "$said" in
                *"denied network"*)
                    echo "  (APP_ENV=production denies loopback: a backend on this host needs" \
                         "APP_PROXY_DENIED_NETWORKS without 127.0.0.0/8; docs/deployment.md)" >&2 ;;
            esac
            exit 1
        fi ;;
esac
echo "ok: app_proxy reached application $app_id's backend (it answered $status)"
