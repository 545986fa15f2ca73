"""The embedded transfer's connections to backends: one urllib3 PoolManager per process,
its pools keyed by address and TLS name, each pooled connection let go after IDLE_REUSE
seconds idle, the request target sent as it was signed, and every header line of an
answer checked before http.client reads it.

urllib3 is used directly, below requests: no cookies kept between callers, nothing taken
from the environment, no default headers, no redirects followed, no retries, and none of
requests' preparing of every call (its cost: bench/JOURNAL.md)."""

import http.client
import re
import ssl
import time
from typing import IO, Any

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Timeout, parse_url

POOL_SIZE = 32  # connections kept per upstream host: above gunicorn's threads per worker
IDLE_REUSE = 0.75  # seconds a pooled connection may idle and still be reused


class Pools:
    """The process's connections to backends (built after gunicorn forks: pools are not
    shared)."""

    def __init__(self, ca_bundle: str) -> None:
        # The CAs read once: given as a file, urllib3 reads it again for every new TLS
        # connection (tens of milliseconds of CPU for the system's bundle).
        self.tls = ssl.create_default_context(cafile=ca_bundle)
        self.manager = PoolManager(num_pools=64, maxsize=POOL_SIZE)
        self.manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    def send(
        self,
        address: str,
        server_name: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Any,
        timeout: Timeout,
    ) -> BaseHTTPResponse:
        """Send a request to `address` (scheme://ip:port, the one the check approved),
        verified as `server_name` (TLS), its request target `target` exactly as signed;
        the answer's head read, its body left to stream. urllib3's own exceptions, not
        retried: ProtocolError wraps what http.client or the socket raised (cause())."""
        url = parse_url(address)
        # Pools keyed by address and name: a connection verified for one name is never
        # reused for another name on the same address.
        tls = (
            {
                "ssl_context": self.tls,
                "cert_reqs": "CERT_REQUIRED",
                "server_hostname": server_name,
                "assert_hostname": server_name,
            }
            if url.scheme == "https"
            else None
        )
        pool = self.manager.connection_from_host(url.host, url.port, url.scheme, tls)
        return pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=timeout,
            preload_content=False,
            decode_content=False,
        )


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


def cause(error: BaseException) -> BaseException:
    """What http.client or the socket raised, under urllib3's ProtocolError."""
    if isinstance(error, ProtocolError) and len(error.args) > 1:
        inner = error.args[1]
        if isinstance(inner, BaseException):
            return inner
    return error


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
