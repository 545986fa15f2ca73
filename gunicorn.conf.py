"""gunicorn settings, from environment variables: `gunicorn -c gunicorn.conf.py wsgi:app`.

| variable                  | default         |                                            |
|---------------------------|-----------------|--------------------------------------------|
| GUNICORN_BIND             | 127.0.0.1:8000  | behind nginx, listen on loopback only      |
| GUNICORN_WORKERS          | 2               | processes (about one per core)             |
| GUNICORN_THREADS          | 8               | threads per process (gthread); app_proxy's |
|                           |                 | embedded transfer takes at most half       |
| GUNICORN_TIMEOUT          | 60              | seconds a silent worker lives              |
| GUNICORN_GRACEFUL_TIMEOUT | 30              | seconds to finish requests on stop/HUP     |
| GUNICORN_KEEPALIVE        | 5               | seconds an idle keep-alive connection waits|
|                           |                 | (keep it above nginx's keepalive_timeout,  |
|                           |                 | 4 s in deploy/nginx.conf)                  |
| GUNICORN_MAX_REQUESTS     | 100000          | recycle a worker after this many (+10%)    |
| GUNICORN_ACCESS_LOG       | (off)           | "-": gunicorn's own access log on stdout  |

The app itself writes one JSON line per request, so gunicorn's access log stays off
unless asked for.
| PROMETHEUS_MULTIPROC_DIR  | a new temp dir  | where workers share their metrics (a temp  |
|                           |                 | dir of its own is removed on exit)         |
"""

import json
import os
import shutil
import sys
import tempfile

from gunicorn import util


def _positive_int(name, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"configuration error: {name}: must be a whole number above 0, got {raw!r}")
    return int(raw)


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = _positive_int("GUNICORN_WORKERS", 2)
threads = _positive_int("GUNICORN_THREADS", 8)
timeout = _positive_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _positive_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _positive_int("GUNICORN_KEEPALIVE", 5)
max_requests = _positive_int("GUNICORN_MAX_REQUESTS", 100000)
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# No management socket under $HOME (read-only under the systemd unit); signals suffice.
control_socket_disable = True
# A request line and each header line above nginx's 7 KiB (deploy/nginx.conf), so what
# nginx passes on gunicorn takes. The number of headers bounds what a head may cost
# gunicorn alone (fields × field size: about 1 MiB), far above what any client sends.
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 128

# gunicorn believes no forwarded header of anyone's: the app alone decides how far to
# trust X-Forwarded-* (TRUSTED_PROXIES), so gunicorn neither takes the scheme from a
# client's X-Forwarded-Proto/-Ssl/-Protocol (nor answers "contradictory" ones with an
# HTML 400) nor takes SCRIPT_NAME or PATH_INFO from headers.
forwarded_allow_ips = ""
secure_scheme_headers = {}

# prometheus-client reads this when first imported, so it is set before the app loads.
# A fresh directory per start (stale files of dead workers would skew the sums), removed
# when gunicorn exits.
_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="applications-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def _json_error(sock, status_int, reason, mesg):
    """gunicorn's own refusals (a malformed request, a head too large, an answer it cannot
    send) in the service's JSON error shape, where gunicorn writes an HTML page."""
    body = json.dumps({"code": status_int, "status": reason, "message": mesg or reason}) + "\n"
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1"))


util.write_error = _json_error


def on_starting(server):
    """Refuse to start on an invalid setting, with one line naming it."""
    from applications_api.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(f"configuration error: {error}")
    if not settings.proxy_signing_key:
        server.log.warning(
            "APP_PROXY_SIGNING_KEY is not set: app_proxy's identity signature proves nothing"
        )


def on_exit(server):
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
