"""The embedded transfer's connections to backends: one pooled requests HTTPAdapter per
process, its pools keyed by address and TLS name, each pooled connection let go after
IDLE_REUSE seconds idle, the request target sent as it was signed, and every header line
of an answer checked before http.client reads it.

The adapter is used without a Session: no cookies kept between callers, nothing taken
from the environment, no default headers, no redirects followed, and none of a
Session's per-call merging."""

import http.client
import re
import ssl
import time
from typing import IO, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError
from urllib3.response import BaseHTTPResponse

POOL_SIZE = 32  # connections kept per upstream host: above gunicorn's threads per worker
IDLE_REUSE = 0.75  # seconds a pooled connection may idle and still be reused


def adapter(ca_bundle: str) -> "Adapter":
    """The process's adapter (built after gunicorn forks: pools are not shared)."""
    made = Adapter(ca_bundle, pool_connections=64, pool_maxsize=POOL_SIZE, max_retries=0)
    made.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
    return made


class _AsSigned:
    """The request target goes out as it was signed, byte for byte: urlopen would encode
    it again (%2f becomes %2F, a bare "?" goes), so the target it was given travels on
    beside the one it encodes, to the call that writes the request line."""

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> BaseHTTPResponse:
        kwargs.setdefault("signed_target", url)  # (a retry's own call keeps the first)
        return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]

    def _make_request(
        self, conn: Any, method: str, url: str, *args: Any, **kwargs: Any
    ) -> BaseHTTPResponse:
        # (a mixin: the connection pool that defines these follows it in the MRO)
        return super()._make_request(  # type: ignore[misc]
            conn, method, kwargs.pop("signed_target"), *args, **kwargs
        )


class Prepared(requests.PreparedRequest):
    """A request sent to an approved address, verified as `server_name` (TLS), its
    request target `target` exactly as signed (requests would encode it again)."""

    def __init__(self, server_name: str, target: str) -> None:
        super().__init__()
        self.server_name, self.target = server_name, target


class Adapter(HTTPAdapter):
    def __init__(self, ca_bundle: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The CAs read once: given as a file, urllib3 reads it again for every new TLS
        # connection (tens of milliseconds of CPU for the system's bundle).
        self.tls = ssl.create_default_context(cafile=ca_bundle)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests' own, less the CA file it gives every connection (urllib3 would read
        it into the context again at each): the context holds the CAs."""
        super().cert_verify(conn, url, verify, cert)
        if url.lower().startswith("https"):
            conn.ca_certs = conn.ca_cert_dir = None

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """The target urllib3 is asked to send: a Prepared request's own, as signed."""
        if isinstance(request, Prepared):
            return request.target
        return super().request_url(request, proxies)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        """Pools keyed by address and name: a connection verified for one name is never
        reused for another name on the same address."""
        host_params, given = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(given)
        if host_params["scheme"] == "https" and isinstance(request, Prepared):
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self.tls
            pool_kwargs["server_hostname"] = request.server_name
            pool_kwargs["assert_hostname"] = request.server_name
        return host_params, pool_kwargs


def cause(error: BaseException) -> BaseException | None:
    """What http.client or the socket raised under requests' and urllib3's wrappers."""
    inner = error.args[0] if error.args else None
    if isinstance(inner, ProtocolError) and len(inner.args) > 1:
        cause = inner.args[1]
        return cause if isinstance(cause, BaseException) else None
    return inner if isinstance(inner, BaseException) else None


# RFC 9110 §5 and RFC 9112 §5: a field line is a token, ":", and a value of visible
# characters, spaces and tabs. No control byte, no bare CR (a lenient parser reads a
# line break there), no obsolete line folding.
_FIELD_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r?\n")


class MalformedAnswer(http.client.HTTPException):
    """The backend's answer holds a header line no HTTP/1.1 message may carry."""


class _CheckedHead:
    """The backend's answer as http.client reads its head: each header line checked
    first, since http.client's parser takes a bare CR for a line break and passes
    control bytes on, which the server then refuses to send."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.in_headers = False  # (a status line first, after each interim answer too)

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        if not self.in_headers:
            self.in_headers = True
        elif line in (b"\r\n", b"\n", b""):
            self.in_headers = False
        elif not _FIELD_LINE.fullmatch(line):
            raise MalformedAnswer(f"a header line no field may hold: {line[:80]!r}")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _CheckedResponse(http.client.HTTPResponse):
    def begin(self) -> None:
        raw = self.fp
        self.fp = _CheckedHead(raw)  # type: ignore[assignment]
        try:
            super().begin()
        finally:
            if self.fp is not None:
                self.fp = raw  # the body is read straight from the socket


class _Connection(HTTPConnection):
    response_class = _CheckedResponse


class _TLSConnection(HTTPSConnection):
    response_class = _CheckedResponse


class _IdleLimit:
    """A pooled connection idle longer than IDLE_REUSE seconds is let go, not reused:
    before a backend's own idle timeout (1 s and more) closes it under a request, which
    only a bodiless request could be sent again after (deploy/nginx.conf's is the same)."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        if time.monotonic() - getattr(conn, "idle_since", time.monotonic()) > IDLE_REUSE:
            conn.close()  # (urllib3 connects it anew)
        return conn


class HTTPPool(_AsSigned, _IdleLimit, HTTPConnectionPool):
    ConnectionCls = _Connection


class HTTPSPool(_AsSigned, _IdleLimit, HTTPSConnectionPool):
    ConnectionCls = _TLSConnection
