"""What operators see of each request: its id, one JSON log line, Prometheus metrics.

Every response carries `X-Request-ID` (the caller's, when well-formed, else a new one);
the same id goes upstream through app_proxy and into the log line. Log lines never hold
headers, so never a token or a cookie.

Metrics are prometheus-client's. Under gunicorn, gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR so `/metrics` adds up every worker's figures.
"""

import glob
import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache

from flask import Blueprint, Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from .auth.authentication import current_user
from .runtime import current_settings

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Metric labels come from closed sets, so no caller can grow /metrics: any other
# method is counted as OTHER (the log line keeps what was sent).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
request_log = logging.getLogger("applications_api.requests")

HTTP_REQUESTS = Counter(
    "applications_http_requests_total", "Requests answered.", ["endpoint", "method", "status"]
)
HTTP_DURATION = Histogram(
    "applications_http_request_duration_seconds",
    "Time from the request's arrival until its response was closed.",
    ["endpoint", "method"],
)
PROXY_UPSTREAM_DURATION = Histogram(
    "app_proxy_upstream_duration_seconds",
    "Time until an application's backend answered with its status and headers.",
    ["application_id"],
)
PROXY_UPSTREAM_ERRORS = Counter(
    "app_proxy_upstream_errors_total",
    "app_proxy calls whose backend failed: unreachable, timeout, denied, broken body.",
    ["application_id", "error"],
)

metrics = Blueprint("metrics", __name__)


# One spelling only (strict_slashes: /metrics/ is a 404), the one the nginx site guards.
@metrics.route("/metrics", strict_slashes=True)
def prometheus_metrics() -> Response:
    """Prometheus text format. Keep it off the public site (see deploy/nginx.conf)."""
    registry = REGISTRY
    if directory := current_settings().metrics_multiproc_dir:
        registry = CollectorRegistry()
        registry.register(_WorkersCollector(directory))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _WorkersCollector(multiprocess.MultiProcessCollector):
    """Every worker's figures, less the files still empty: a worker creates its file and
    only then sizes it, and prometheus-client fails the whole scrape on one it finds
    empty (client_python issue 1199)."""

    def __init__(self, directory: str) -> None:
        super().__init__(None, directory)

    def collect(self):  # type: ignore[no-untyped-def]
        files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if _sized(path)]
        return self.merge(files, accumulate=True)


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauge, removed since the glob
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(line)


_ENCODER = json.JSONEncoder(default=str)  # (json.dumps builds one per call when given default)


@lru_cache(maxsize=1024)  # (labels() validates and locks on every call; the sets are closed)
def _series(endpoint: str, method: str, status: int) -> tuple[Counter, Histogram]:
    return HTTP_REQUESTS.labels(endpoint, method, status), HTTP_DURATION.labels(endpoint, method)


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.register_blueprint(metrics)


def current_request_id() -> str | None:
    """This request's id (the caller's X-Request-ID when well-formed); None outside
    requests."""
    if not has_request_context():
        return None
    request_id: str | None = g.get("_request_id")
    return request_id


def _start() -> None:
    given = request.headers.get("X-Request-ID", "")
    g._request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
    g._request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = current_request_id() or uuid.uuid4().hex
    started = g.get("_request_started", time.perf_counter())
    response.headers["X-Request-ID"] = request_id
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    user = current_user()
    fields = {
        "request_id": request_id,
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "user_id": user.id if user else None,
        "application_id": (request.view_args or {}).get("app_id"),
        "remote_addr": request.remote_addr,
    }

    def record() -> None:
        # Runs when the response is closed: a streamed proxy answer counts in full.
        duration = time.perf_counter() - started
        method = fields["method"] if fields["method"] in METHODS else "OTHER"
        requests, durations = _series(endpoint, method, fields["status"])
        requests.inc()
        durations.observe(duration)
        fields["duration_ms"] = round(duration * 1000, 3)
        request_log.info("request", extra={"fields": fields})

    response.call_on_close(record)
    return response
