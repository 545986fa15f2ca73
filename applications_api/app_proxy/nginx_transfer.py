"""The nginx transfer (APP_PROXY_TRANSFER=nginx): this service decides, nginx moves
the bytes, so a slow caller or backend costs nginx a connection, never a thread here.

deploy/nginx.conf asks about every app_proxy request first: in a bodiless subrequest
(`auth_request`), or, for a sized body of at most APP_PROXY_DIGEST_MAX_BYTES, with the
request itself, its body read by nginx (`X-App-Proxy-Buffered`), so that the signature
covers it. The answer carries no body:

- 204 and the upstream request: `X-App-Proxy-Upstream` (scheme://ip:port, the address
  the denied-networks check approved, so nginx connects where the check looked),
  `X-App-Proxy-Uri` (path and query, exactly as signed), `X-App-Proxy-Host` (the Host
  header), `X-App-Proxy-Server-Name` (TLS name), `X-App-Proxy-Base-Url` and
  `X-App-Proxy-Base-Path` (redirects under them are rewritten to `X-Forwarded-Prefix`),
  and the headers added upstream under their own names (`X-Forwarded-*`, the signed
  identity: a body nginx streams unread is not covered, an empty one is, as nginx
  tells in `X-App-Proxy-Content-Length` and `X-App-Proxy-Transfer-Encoding`, and a
  body nginx read is); for a body nginx read, `X-Accel-Redirect` to the location that
  sends it on, with the method (`X-App-Proxy-Method`, which nginx's redirect drops);
- or this service's JSON error, whose body nginx cannot take from an auth_request
  answer: it travels in `X-App-Proxy-Error`, and nginx answers it with the same status.
"""

import json

from flask import Flask, Response
from webargs.flaskparser import abort
from werkzeug.datastructures import Headers

from ..settings import Settings
from .forwarding import HOP_BY_HOP, URL_PREFIX, Inbound, Plan, withheld

ERROR_HEADER = "X-App-Proxy-Error"
CONNECTION_HEADER = "X-App-Proxy-Connection"
BUFFERED_HEADER = "X-App-Proxy-Buffered"  # nginx read the body and sends it along
SEND_BUFFERED = f"{URL_PREFIX}/_buffered/"  # deploy/nginx.conf's location that sends it on
# Caller headers nginx never passes on (deploy/nginx.conf clears or replaces them),
# besides the withheld ones.
DROPPED_BY_NGINX = HOP_BY_HOP | {"expect", "http2-settings"}


class NginxTransfer:
    """The decision only: nginx holds the transfer's settings (deploy/nginx.conf)."""

    def __init__(self, settings: Settings) -> None:
        self.digest_max_bytes = settings.proxy_digest_max_bytes

    def init_app(self, app: Flask) -> None:
        app.after_request(_error_for_nginx)

    def forward(self, plan: Plan, inbound: Inbound) -> Response:
        caller = plan.caller
        _refuse_connection_named_headers(caller.headers)
        headers = {
            "X-App-Proxy-Upstream": plan.address,
            "X-App-Proxy-Uri": plan.uri,
            "X-App-Proxy-Host": plan.host,
            "X-App-Proxy-Server-Name": plan.server_name,
            "X-App-Proxy-Base-Url": plan.base_url,
            "X-App-Proxy-Base-Path": plan.base_path,
            **plan.headers,
        }
        if caller.headers.get(BUFFERED_HEADER):
            length = caller.content_length or 0
            body = inbound.stream.read() if length <= self.digest_max_bytes else None
            headers.update(plan.sign(body))
            headers.update({"X-Accel-Redirect": SEND_BUFFERED, "X-App-Proxy-Method": caller.method})
        else:
            headers.update(plan.sign(b"" if _bodiless(caller.headers) else None))
        return Response(status=204, headers=headers)


def _bodiless(headers: Headers) -> bool:
    """Whether the caller's request has no body, as nginx saw it (the subrequest has none)."""
    length = headers.get("X-App-Proxy-Content-Length", "")
    chunked = headers.get("X-App-Proxy-Transfer-Encoding", "")
    return not chunked and length.strip() in ("", "0")


def _refuse_connection_named_headers(headers: Headers) -> None:
    """nginx cannot drop headers by a name the caller chose: a request whose
    `Connection` names one it would pass on is refused rather than forwarded with it.
    (nginx sends its own Connection to the app, and the caller's as CONNECTION_HEADER.)"""
    given = headers.get(CONNECTION_HEADER, "")
    named = {name.strip().lower() for name in given.split(",")}
    kept = sorted(
        name for name in named - DROPPED_BY_NGINX if name in headers and not withheld(name)
    )
    if kept:
        abort(
            400,
            message="The Connection header names end-to-end headers this proxy "
            f"cannot remove: {', '.join(kept)}.",
        )


def _error_for_nginx(response: Response) -> Response:
    """Every error carries its body in ERROR_HEADER, whichever route refused: nginx may
    have matched the app_proxy location on a path it normalized (/x/../api/v1/app_proxy/)
    that the app, given the raw target, routes nowhere. The site hides it elsewhere."""
    if response.status_code >= 400:
        try:
            body = json.loads(response.get_data())
        except ValueError:
            body = {"code": response.status_code, "status": response.status}
        response.headers[ERROR_HEADER] = json.dumps(body, ensure_ascii=True)
    return response
