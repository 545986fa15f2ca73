"""How a request becomes an upstream request, and the upstream answer a response.

Bodies stream both ways in 64 KiB chunks and pass through byte for byte (no gzip
decoding), so Content-Length and Content-Encoding stay true. Connections to upstreams
come from one pooled requests.Session per process.
"""

import http.cookiejar
import logging
import re
import time
from urllib.parse import unquote, urljoin, urlsplit

import requests
from flask import Response, current_app, g, request
from flask_smorest import abort
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from ..observability import PROXY_UPSTREAM_DURATION, PROXY_UPSTREAM_ERRORS
from . import signing
from .network_policy import DeniedAddress, check_host

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
POOL_SIZE = 32  # connections kept per upstream host: above gunicorn's threads per worker
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade",
})
# Never forwarded upstream (besides hop-by-hop ones): the caller's credentials stay
# here, and headers this service sets itself are not taken from the caller.
NOT_FORWARDED = {
    "host", "authorization", "cookie", "content-length", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix", "x-forwarded-port",
    "forwarded", "x-real-ip", "x-request-id",
    *(name.lower() for name in signing.IDENTITY_HEADERS),
}


URL_PREFIX = "/api/v1/app_proxy"


def proxy_prefix(app_id):
    """Where application `app_id`'s backend appears on this service."""
    return f"{URL_PREFIX}/{app_id}"


def end_to_end(headers):
    """(name, value) pairs less hop-by-hop headers, those `Connection` names included."""
    named = {name.strip().lower() for name in headers.get("Connection", "").split(",")}
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


class UpstreamBrokeOff(Exception):
    """The upstream's body ended early; the response is cut so the caller sees it."""


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False  # a shared session must never carry one caller's cookies to another


def upstream_session():
    """This process's pooled session, made on first use (after gunicorn forks)."""
    session = current_app.extensions.get("app_proxy_session")
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or netrc from the environment
        session.cookies.set_policy(_NoCookies())
        adapter = HTTPAdapter(pool_connections=64, pool_maxsize=POOL_SIZE, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.clear()  # no default User-Agent/Accept/Accept-Encoding added
        current_app.extensions["app_proxy_session"] = session
    return session


def raw_proxied_path(app_id):
    """The {path} part of this request as the caller sent it (still percent-encoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    prefix = f"{proxy_prefix(app_id)}/"
    if raw:
        raw = raw.split("?", 1)[0]
        if "://" in raw:  # absolute-form request target
            raw = urlsplit(raw).path
        if raw.startswith(prefix):
            return raw[len(prefix):]
    # No raw URI from the server: rebuild it from the decoded path.
    return request.path[len(prefix):] if request.path.startswith(prefix) else ""


def normalize_path(raw_path):
    """Resolve dot-segments of `raw_path`; abort 400 if they would climb above the base.

    Segments are judged after percent-decoding (repeatedly, so %252e%252e counts), and a
    segment hiding a slash or backslash that makes a dot-segment is refused outright.
    """
    kept = []
    for segment in raw_path.split("/"):
        decoded = segment
        for _ in range(3):
            decoded = unquote(decoded)
        parts = re.split(r"[/\\]", decoded)
        if len(parts) > 1 and any(part in (".", "..") for part in parts):
            abort(400, message="The proxied path hides a dot-segment behind an encoded slash.")
        if decoded == ".":
            continue
        if decoded == "..":
            if not kept:
                abort(400, message="The proxied path climbs above the application's base URL.")
            kept.pop()
            continue
        kept.append(segment)
    return "/".join(kept)


def target_url(web_url, path):
    base = urlsplit(web_url)
    base_path = base.path if base.path.endswith("/") else base.path + "/"
    return f"{base.scheme}://{base.netloc}{base_path}{path}", base_path


def upstream_headers(app_id, upstream_path, query, user_id):
    headers = {
        name: value
        for name, value in end_to_end(request.headers)
        if name.lower() not in NOT_FORWARDED
    }
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    headers.update({
        "X-Forwarded-For": request.remote_addr or "",
        "X-Forwarded-Host": request.host,
        "X-Forwarded-Proto": request.scheme,
        "X-Forwarded-Prefix": proxy_prefix(app_id),
        "X-Request-ID": g.request_id,
    })
    settings = current_app.config["SETTINGS"]
    headers.update(signing.identity_headers(
        settings.proxy_signing_key, request.method, upstream_path, query, user_id
    ))
    return headers


class _SizedStream:
    """The caller's body with its length, so requests sends Content-Length, not chunks."""

    def __init__(self, stream, length):
        self.stream, self.len = stream, length

    def read(self, size=CHUNK_SIZE):
        return self.stream.read(size)


def _chunks(stream):
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def request_body():
    length = request.content_length
    if length:
        return _SizedStream(request.stream, length)
    if length is None and request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return _chunks(request.stream)  # requests sends it chunked, as it came
    return None


def rewrite_location(location, upstream_url, base_url, app_id):
    """A redirect to somewhere under web_url points back through the proxy."""
    absolute = urljoin(upstream_url, location)
    if absolute.startswith(base_url):
        return f"{proxy_prefix(app_id)}/{absolute[len(base_url):]}"
    return location


def _fail(app_id, status, error, message):
    PROXY_UPSTREAM_ERRORS.labels(app_id, error).inc()
    abort(status, message=message)


def forward(app_id, web_url, raw_path, user_id):
    """Send this request to the application's backend and stream its answer back."""
    settings = current_app.config["SETTINGS"]
    url, base_path = target_url(web_url, normalize_path(raw_path))
    parts = urlsplit(url)
    try:
        check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                   settings.proxy_denied_networks)
    except DeniedAddress as error:
        log.warning("app_proxy %s: refused: %s", app_id, error)
        _fail(app_id, 502, "denied", "The application's backend is in a denied network.")
    except OSError as error:
        log.warning("app_proxy %s: cannot resolve %s: %s", app_id, parts.hostname, error)
        _fail(app_id, 502, "unresolvable", "The application's backend cannot be reached.")

    query = request.query_string.decode("latin-1")
    if query:
        url = f"{url}?{query}"
    headers = upstream_headers(app_id, parts.path, query, user_id)
    started = time.perf_counter()
    try:
        upstream = upstream_session().request(
            request.method,
            url,
            headers=headers,
            data=request_body(),
            stream=True,
            allow_redirects=False,
            timeout=(settings.proxy_connect_timeout, settings.proxy_read_timeout),
        )
    except (requests.ConnectTimeout, requests.ReadTimeout) as error:
        log.warning("app_proxy %s: %s timed out: %s", app_id, url, error)
        _fail(app_id, 504, "timeout", "The application's backend did not answer in time.")
    except requests.RequestException as error:
        log.warning("app_proxy %s: %s failed: %s", app_id, url, error)
        _fail(app_id, 502, "unreachable", "The application's backend cannot be reached.")
    PROXY_UPSTREAM_DURATION.labels(app_id).observe(time.perf_counter() - started)
    return _response(upstream, app_id, f"{parts.scheme}://{parts.netloc}{base_path}")


def _response(upstream, app_id, base_url):
    headers = [
        (name, rewrite_location(value, upstream.url, base_url, app_id)
         if name.lower() == "location" else value)
        for name, value in end_to_end(upstream.raw.headers)
    ]

    # Read the first chunk before answering: an upstream that breaks off at once
    # still gets a clean JSON 502/504, since nothing has been sent yet.
    chunks = upstream.raw.stream(CHUNK_SIZE, decode_content=False)
    try:
        first = next(chunks, b"")
    except ReadTimeoutError:
        upstream.close()
        log.warning("app_proxy %s: upstream body timed out", app_id)
        _fail(app_id, 504, "timeout", "The application's backend did not answer in time.")
    except (Urllib3Error, OSError) as error:
        upstream.close()
        log.warning("app_proxy %s: upstream body broke off: %s", app_id, error)
        _fail(app_id, 502, "broken_body", "The application's backend broke off its answer.")

    def body():
        try:
            yield first
            yield from chunks
        except (Urllib3Error, OSError) as error:
            # Headers are sent: cutting the connection is the only honest signal left.
            log.warning("app_proxy %s: upstream body broke off: %s", app_id, error)
            PROXY_UPSTREAM_ERRORS.labels(app_id, "broken_body").inc()
            raise UpstreamBrokeOff(str(error)) from None
        finally:
            upstream.close()

    response = Response(body(), status=upstream.status_code, direct_passthrough=True)
    response.headers.clear()
    for name, value in headers:
        response.headers.add(name, value)
    response.call_on_close(upstream.close)
    return response
