"""The embedded transfer's bodies: the caller's, read first when the signature is to
cover it, else streamed and counted for the watchdog; and the backend's answer, passed
on as each read returns, its redirects under web_url pointed back through the proxy."""

import logging
from collections.abc import Iterator
from typing import IO, NoReturn
from urllib.parse import urljoin

from flask import Response
from webargs.flaskparser import abort
from werkzeug.exceptions import ClientDisconnected

from ..observability import PROXY_UPSTREAM_ERRORS
from .connections import Answer
from .forwarding import Caller, Plan, end_to_end, fail, proxy_prefix
from .in_flight import InFlight

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
UPLOAD_READ_SIZE = 16 * 1024  # (the watchdog sees an upload's progress a read at a time)


class UpstreamBrokeOff(Exception):
    """The answer ended early or was cut; the caller's connection is closed mid-body,
    so the caller sees an incomplete body, never a falsely complete one."""


class CallerBodyError(Exception):
    """The caller's body could not be read: malformed (a bad chunk), or cut short."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.aborted = isinstance(error, OSError | ClientDisconnected)


def answer(transfer: InFlight, upstream: Answer, plan: Plan) -> Response:
    app_id = transfer.app_id
    headers = [
        (
            name,
            rewrite_location(value, plan.url, plan.base_url, app_id)
            if name.lower() == "location"
            else value,
        )
        for name, value in end_to_end(upstream.headers)
    ]
    transfer.moving_body()

    def read() -> bytes:
        # read1: whatever one socket read brings, so a dribble is passed on at once
        return upstream.read1(CHUNK_SIZE)

    # Read the first chunk before answering: an upstream that breaks off at once
    # still gets a clean JSON 502/504, since nothing has been sent yet.
    try:
        first = read()
    except TimeoutError:
        upstream.close()
        log.warning("app_proxy %s: upstream body timed out", app_id)
        fail(app_id, 504, "timeout", "The application's backend did not answer in time.")
    except OSError as error:
        upstream.close()
        log.warning("app_proxy %s: upstream body broke off: %s", app_id, error)
        fail(app_id, 502, "broken_body", "The application's backend broke off its answer.")

    def body() -> Iterator[bytes]:
        chunk = first
        try:
            while chunk:
                transfer.moved(len(chunk))
                yield chunk
                chunk = read()
            if transfer.cut_reason:
                raise UpstreamBrokeOff(transfer.cut_reason)
        except OSError as error:
            # Headers are sent: cutting the connection is the only honest signal left.
            log.warning("app_proxy %s: upstream body broke off: %s", app_id, error)
            PROXY_UPSTREAM_ERRORS.labels(app_id, "broken_body").inc()
            raise UpstreamBrokeOff(str(error)) from None
        finally:
            upstream.close()

    # not direct_passthrough: that skips Response.close, and with it call_on_close
    response = Response(body(), status=upstream.status)
    response.headers.clear()
    for name, value in headers:
        response.headers.add(name, value)
    response.call_on_close(upstream.close)
    return response


def rewrite_location(location: str, upstream_url: str, base_url: str, app_id: int) -> str:
    """A redirect to somewhere under web_url points back through the proxy."""
    absolute = urljoin(upstream_url, location)
    if absolute.startswith(base_url):
        return f"{proxy_prefix(app_id)}/{absolute[len(base_url) :]}"
    return location


class CountedBody:
    """The caller's body, counted as it is read so the watchdog sees its progress, and
    whatever reading it raised told apart from the backend's failures."""

    def __init__(self, stream: IO[bytes], transfer: InFlight) -> None:
        self.stream, self.transfer = stream, transfer

    def read(self, size: int = UPLOAD_READ_SIZE) -> bytes:
        if self.transfer.cut_reason:
            raise ConnectionAbortedError(f"request body cut: {self.transfer.cut_reason}")
        try:
            chunk = self.stream.read(min(size, UPLOAD_READ_SIZE))
        except Exception as error:  # whatever the server raised reading it: the caller's
            raise CallerBodyError(error) from error
        if chunk:
            self.transfer.moved(len(chunk))
        else:
            self.transfer.waiting()  # sent in full: now the backend has the floor
        return chunk

    def __iter__(self) -> Iterator[bytes]:  # a chunked body: sent chunked, as it came
        while chunk := self.read():
            yield chunk


def request_body(
    transfer: InFlight, caller: Caller, stream: IO[bytes], digest_max_bytes: int
) -> tuple[bytes | CountedBody | Iterator[bytes] | None, bytes | None]:
    """(what is sent upstream, the bytes read for the signature's digest or None): an
    empty body and one of at most `digest_max_bytes` are read first, so the signature
    covers them; a larger or chunked one streams unread."""
    length = caller.content_length
    chunked = caller.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if not length and not (length is None and chunked):
        return None, b""
    if length is None:
        return iter(CountedBody(stream, transfer)), None
    body = CountedBody(stream, transfer)  # (sent as the caller's Content-Length says)
    if length > digest_max_bytes:
        return body, None
    transfer.moving_body(upload=True)
    data = bytearray()
    while len(data) < length:
        chunk = body.read(min(length - len(data), UPLOAD_READ_SIZE))
        if not chunk:
            raise CallerBodyError(ConnectionAbortedError("the request body ended early"))
        data += chunk
    transfer.waiting()
    return bytes(data), bytes(data)


def refuse_body(app_id: int, error: CallerBodyError) -> NoReturn:
    """400 for a body that could not be read: cut short, or malformed."""
    if error.aborted:  # the caller went away: nobody reads this answer
        log.info("app_proxy %s: the caller broke off its body: %s", app_id, error)
        fail(app_id, 400, "client_abort", "The request body broke off.")
    abort(400, message=f"The request body is malformed: {error}")
