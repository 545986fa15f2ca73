"""What a proxied request becomes upstream: the view reads the caller once (a Caller),
and `plan()` turns it into a Plan, a value: the target URL and approved address, the
headers that go upstream, and the signing bound to the body to come. Both transfers
(python_transfer.py, nginx_transfer.py) send what the plan holds and read nothing else
but the body; `plan()` itself reads no request and counts nothing (a refusal is raised
as Refused, which the view answers).
"""

import logging
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, NoReturn, cast
from urllib.parse import unquote, urlsplit

from http_message_signatures import HTTPMessageSignaturesException
from webargs.flaskparser import abort
from werkzeug.datastructures import Headers

from ..api import API_PREFIX
from ..observability import PROXY_UPSTREAM_ERRORS
from ..settings import Settings
from . import signing
from .network_policy import DeniedAddress, approved_address

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",  # (HTTP/1.0's; RFC 9110 §7.6.1 has it removed too)
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Client identity and routing headers that backends and their frameworks act on: only
# this service may say who called and how, so a caller's never get through. Every name
# under these prefixes is the service's alone, known today or not (X-Forwarded-User,
# X-App-Proxy-Upstream): deploy/nginx.conf clears them by the same rule.
SPOOFABLE_PREFIXES = ("x-forwarded-", "x-app-proxy-")
SPOOFABLE = frozenset(
    {
        "forwarded",
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "client-ip",
        "x-cluster-client-ip",
        "x-original-forwarded-for",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        *(name.lower() for name in signing.IDENTITY_HEADERS),
    }
)
# Never forwarded upstream (besides hop-by-hop ones): the caller's credentials stay
# here, and what this service sets itself is not taken from the caller.
# (X-Request-ID is set too: the caller's when well-formed, observability.py.)
NOT_FORWARDED = SPOOFABLE | {"host", "authorization", "cookie", "content-length", "x-request-id"}


def withheld(name: str) -> bool:
    """Whether a caller's header `name` (end-to-end) stays here."""
    lower = name.lower()
    return lower in NOT_FORWARDED or lower.startswith(SPOOFABLE_PREFIXES)


URL_PREFIX = f"{API_PREFIX}/app_proxy"


def proxy_prefix(app_id: int) -> str:
    """Where application `app_id`'s backend appears on this service."""
    return f"{URL_PREFIX}/{app_id}"


def end_to_end(headers: Headers | Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, value) pairs less hop-by-hop headers, those `Connection` names included."""
    named = {name.strip().lower() for name in headers.get("Connection", "").split(",")}
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


class Refused(Exception):
    """The plan's refusal: answered with `status` and `message`, and counted among the
    upstream errors by `kind` when it has one (refuse())."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def refuse(app_id: int, refused: Refused) -> NoReturn:
    if refused.kind is not None:
        fail(app_id, refused.status, refused.kind, refused.message)
    abort(refused.status, message=refused.message)


@dataclass(frozen=True)
class Caller:
    """The proxied request as the view read it, once (views.caller()): all a plan is made of,
    and what a transfer may ask of the request besides its body."""

    user_id: int  # the authenticated caller, whose identity is signed
    method: str
    target: str  # the request target as sent: path and query, still percent-encoded
    headers: Headers
    remote_addr: str
    host: str  # the Host this service was called by
    scheme: str
    request_id: str  # this request's (observability.py)
    content_length: int | None


@dataclass(frozen=True)
class Inbound:
    """The caller's body to come, and the WSGI environ it arrives in (its server's socket,
    and where the embedded transfer leaves its exchange): what a transfer reads besides
    its plan."""

    stream: IO[bytes]
    environ: dict

    @property
    def socket(self) -> socket.socket | None:
        return self.environ.get("gunicorn.socket") or self.environ.get("werkzeug.socket")


def raw_target(app_id: int, raw: str) -> tuple[str, str | None]:
    """The {path} part and the query (None without "?") of the request target `raw` as
    the caller sent them, still percent-encoded.

    The raw target must spell the route plainly, `/api/v1/app_proxy/<id>/`: an id
    written otherwise (`01`) or an encoded prefix (`app%5Fproxy`) is refused with 404,
    so the path that was routed is always the path forwarded.
    """
    prefix = f"{proxy_prefix(app_id)}/"
    if "://" in raw:  # absolute-form request target
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if "?" in raw else "")
    path, mark, query = raw.partition("?")
    if path == prefix[:-1]:  # the base, its trailing slash left out
        path = prefix
    if not path.startswith(prefix):
        raise Refused(
            404,
            f"No app_proxy route here: write it {prefix}<path>, "
            "the id in plain digits without leading zeros.",
        )
    return path[len(prefix) :], query if mark else None


# What RFC 3986 allows in a path (pchar and "/"), and in a query ("?" too). Anything
# else, and a "%" that starts no escape, is percent-encoded: the only change made to
# the caller's target, so that it is a URI the signature can cover.
_NOT_IN_PATH = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_NOT_IN_QUERY = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")


def _percent_encoded(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"  # (one character: one byte, as_uri's text)


def as_uri(text: str, not_allowed: re.Pattern[str] = _NOT_IN_PATH) -> str:
    """`text` (a raw target's path or query, one character per byte) as URI characters."""
    return not_allowed.sub(_percent_encoded, text)


def normalize_path(raw_path: str) -> str:
    """Resolve dot-segments of `raw_path`; Refused (400) if they would climb above the base.

    Segments are judged after percent-decoding (repeatedly, so %252e%252e counts), and a
    segment hiding a slash or backslash that makes a dot-segment is refused outright.
    """
    kept: list[str] = []
    for segment in raw_path.split("/"):
        decoded = segment
        for _ in range(3):
            decoded = unquote(decoded)
        parts = re.split(r"[/\\]", decoded)
        if len(parts) > 1 and any(part in (".", "..") for part in parts):
            raise Refused(400, "The proxied path hides a dot-segment behind an encoded slash.")
        if decoded == ".":
            continue
        if decoded == "..":
            if not kept:
                raise Refused(400, "The proxied path climbs above the application's base URL.")
            kept.pop()
            continue
        kept.append(segment)
    return "/".join(kept)


def fail(app_id: int, status: int, error: str, message: str) -> NoReturn:
    """Count an upstream failure by kind and answer it with the JSON error."""
    PROXY_UPSTREAM_ERRORS.labels(app_id, error).inc()
    abort(status, message=message)


@dataclass(frozen=True)
class Plan:
    """Everything a transfer sends upstream for one call, and the signing of its body."""

    app_id: int
    caller: Caller
    origin: str  # web_url's scheme://host[:port]
    uri: str  # /base/path?query: the base path joined with the caller's target, as a URI
    base_path: str  # web_url's path, ending in /
    address: str  # scheme://ip:port the checks approved: the transfer connects there
    server_name: str  # web_url's host name, for TLS (SNI and certificate checks)
    headers: dict  # added upstream, overwriting the caller's: X-Forwarded-*, X-Request-ID
    keys: tuple[signing.SigningKey, ...]  # the application's signing keys (keys.py)

    @property
    def url(self) -> str:
        return self.origin + self.uri

    @property
    def host(self) -> str:
        """The Host header the backend receives."""
        return self.origin.partition("://")[2].rpartition("@")[2]

    @property
    def base_url(self) -> str:
        """Redirects to somewhere under it come back through the proxy."""
        return self.origin + self.base_path

    @property
    def forwarded(self) -> dict[str, str]:
        """The caller's headers that go upstream (end-to-end, less the withheld): worked
        out when a transfer sends them itself (nginx passes the caller's on its own)."""
        return forwarded_headers(self.caller.headers)

    def sign(self, body: bytes | None) -> dict[str, str]:
        """The caller's identity, signed over this request as the backend receives it
        (signing.py); `body`: the bytes forwarded when they were read first, else None."""
        caller = self.caller
        try:
            return signing.identity_headers(
                self.keys, caller.method, self.url, caller.user_id, body
            )
        except HTTPMessageSignaturesException as error:
            log.warning("app_proxy %s: cannot sign for %s: %s", self.app_id, self.url, error)
            fail(
                self.app_id,
                502,
                "unsignable",
                "The application's web_url is not a URL the proxy can sign requests for.",
            )


def plan(
    caller: Caller,
    app_id: int,
    web_url: str,
    settings: Settings,
    signing_keys: Callable[[int], Sequence[signing.SigningKey]],
) -> Plan:
    """The upstream request for this call to `web_url`, its keys found by `signing_keys`.
    Refused: 404 on a route not spelled plainly, 400 on a path escaping the base, 502
    when web_url's host is denied or does not resolve, or no key signs."""
    raw_path, query = raw_target(app_id, caller.target)
    base = urlsplit(web_url)
    base_path = base.path if base.path.endswith("/") else base.path + "/"
    # web_url's path is text (RFC 3987: its characters go as UTF-8 octets), the raw
    # path one character per byte already: both as bytes, then as URI characters
    path = as_uri(base_path.encode().decode("latin-1") + normalize_path(raw_path))
    # web_url has a host (proxy_target checked it with is_web_url)
    host = cast(str, base.hostname)  # (each read of .hostname or .port parses netloc again)
    port = base.port or (443 if base.scheme == "https" else 80)
    try:
        address = approved_address(
            host, port, settings.proxy_denied_networks, settings.proxy_own_addresses
        )
    except DeniedAddress as error:
        log.warning("app_proxy %s: refused: %s", app_id, error)
        raise Refused(502, "The application's backend is in a denied network.", "denied") from None
    except OSError as error:
        log.warning("app_proxy %s: cannot resolve %s: %s", app_id, host, error)
        raise Refused(502, "The application's backend cannot be reached.", "unresolvable") from None
    ip = f"[{address}]" if address.version == 6 else str(address)
    keys = tuple(signing_keys(app_id))
    if not keys:
        raise Refused(
            502, "app_proxy has no key to sign this application's requests.", "unsignable"
        )
    return Plan(
        app_id=app_id,
        caller=caller,
        origin=f"{base.scheme}://{base.netloc}",
        uri=path if query is None else f"{path}?{as_uri(query, _NOT_IN_QUERY)}",
        base_path=base_path,
        address=f"{base.scheme}://{ip}:{port}",
        server_name=host,
        headers={
            "X-Forwarded-For": caller.remote_addr,
            "X-Forwarded-Host": caller.host,
            "X-Forwarded-Proto": caller.scheme,
            "X-Forwarded-Prefix": proxy_prefix(app_id),
            "X-Request-ID": caller.request_id,
        },
        keys=keys,
    )


def forwarded_headers(headers: Headers) -> dict[str, str]:
    """The caller's headers that go upstream: end-to-end ones less the withheld."""
    return {name: value for name, value in end_to_end(headers) if not withheld(name)}
