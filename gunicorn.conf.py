"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

They come from environment variables (GUNICORN_BIND, _WORKERS, _THREADS, _TIMEOUT,
_GRACEFUL_TIMEOUT, _KEEPALIVE, _MAX_REQUESTS, _ACCESS_LOG; PROMETHEUS_MULTIPROC_DIR),
parsed with the service's own in applications_api/settings.py and listed in
docs/deployment.md. The app writes one JSON line per request, so gunicorn's access log
stays off unless asked for.
"""

import json
import os
import shutil
import socket
import sys
import tempfile
from typing import TYPE_CHECKING

from gunicorn import util

if TYPE_CHECKING:  # (gunicorn ships no type information: these are Any to mypy)
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (from any directory)
from applications_api.settings import SettingsError, load_settings  # noqa: E402

try:
    # Every variable is parsed and checked in one place, the service's settings: an invalid
    # one stops gunicorn before it forks, with one line naming it.
    settings = load_settings()
except SettingsError as error:
    sys.exit(f"configuration error: {error}")

bind = settings.server.bind
worker_class = "gthread"
workers = settings.server.workers
threads = settings.threads
timeout = settings.server.timeout
graceful_timeout = settings.server.graceful_timeout
keepalive = settings.server.keepalive
max_requests = settings.server.max_requests
max_requests_jitter = max_requests // 10
accesslog = settings.server.access_log
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
secure_scheme_headers: dict[str, str] = {}

# prometheus-client reads this when first imported, so it is set before the app loads.
# A fresh directory per start (stale files of dead workers would skew the sums), removed
# when gunicorn exits.
_metrics_dir: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="applications-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def _json_error(sock: socket.socket, status_int: int, reason: str, mesg: str | None) -> None:
    """gunicorn's own refusals (a malformed request, a head too large, an answer it cannot
    send) in the service's JSON error shape, where gunicorn writes an HTML page."""
    body = json.dumps({"code": status_int, "status": reason, "message": mesg or reason}) + "\n"
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1"))


util.write_error = _json_error


def on_starting(server: "Arbiter") -> None:
    if not settings.proxy_signing_key:
        server.log.warning(
            "APP_PROXY_SIGNING_KEY is not set: app_proxy's identity signature proves nothing"
        )


def on_exit(server: "Arbiter") -> None:
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server: "Arbiter", worker: "Worker") -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
