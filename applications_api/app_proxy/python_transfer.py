"""The embedded transfer (APP_PROXY_TRANSFER=python): this process moves the bytes.

Used without nginx (scripts/serve.sh, gunicorn alone), so it protects the registry
itself:

- a bulkhead (bulkhead.py): shares of a worker's transfers per worker, application and
  caller; a call over its share waits while the share turns over or moves bytes, up to
  APP_PROXY_QUEUE_SECONDS, and is refused (a JSON 503 with Retry-After) behind calls
  that stall;
- a watchdog thread that cuts a transfer (in_flight.py) past APP_PROXY_DEADLINE, or
  moving less than APP_PROXY_MIN_RATE bytes a second while it moves a body, whichever
  peer is slow;
- bodies of at most APP_PROXY_DIGEST_MAX_BYTES are read first, so the signature covers
  them (signing.py); larger and chunked ones stream; answers are passed on as each read
  returns (streaming.py);
- the request target goes out exactly as planned and signed, to the address the plan
  approved, over connections kept alive per address and TLS name (connections.py).

A request without a body that fails on a connection the backend dropped is sent once
more on a new one (RFC 9112 §9.3.1); one with a body is never replayed.
"""

import logging
import socket
import threading
import time
from typing import Any, NoReturn

from flask import Flask, Response
from webargs.flaskparser import abort

from ..observability import PROXY_UPSTREAM_DURATION, PROXY_UPSTREAM_ERRORS
from ..settings import Settings
from . import connections, streaming
from .bulkhead import Bulkhead, Busy
from .forwarding import Caller, Inbound, Plan, fail
from .in_flight import InFlight

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL = 0.5
REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})  # idempotent, when bodiless
ENVIRON_KEY = "applications_api.app_proxy.transfer"  # this request's InFlight, once admitted


class PythonTransfer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bulkhead = Bulkhead(
            settings.proxy_max_in_flight,
            settings.proxy_max_in_flight_per_app,
            settings.proxy_max_in_flight_per_caller,
            settings.proxy_queue_seconds,
        )
        self.timeouts = (settings.proxy_connect_timeout, settings.proxy_read_timeout)
        self.start_lock = threading.Lock()
        self.pools: connections.Pools | None = None
        self.watchdog: threading.Thread | None = None

    def init_app(self, app: Flask) -> None:
        # (the adapter and watchdog start with the first transfer, after the fork)
        inner = app.wsgi_app

        def released_whatever_happens(environ: dict, start_response: Any) -> Any:
            """An answer the server refused before its body (start_response raised) is
            never closed, so its close callbacks never run: release its slot here."""
            try:
                return inner(environ, start_response)
            except BaseException:
                transfer = environ.get(ENVIRON_KEY)
                if transfer is not None:
                    transfer.cut("refused by the server")
                    self.bulkhead.release(transfer)
                raise

        app.wsgi_app = released_whatever_happens  # type: ignore[method-assign]

    # -- the bulkhead ---------------------------------------------------------------

    def _admit(self, plan: Plan, inbound: Inbound) -> InFlight:
        """An InFlight for this request within the bulkhead, or its 503."""
        transfer = InFlight(
            plan.app_id, plan.caller.user_id, inbound.socket, self.settings.proxy_deadline
        )
        self._start_once()
        try:
            self.bulkhead.admit(transfer)
        except Busy as busy:
            PROXY_UPSTREAM_ERRORS.labels(plan.app_id, "busy").inc()
            _stop_reading_caller(plan.caller, inbound)
            abort(
                503,
                message=f"Too many proxied requests in flight ({busy.share} share of this "
                "worker is taken); retry shortly.",
                headers={"Retry-After": "1"},
            )
        inbound.environ[ENVIRON_KEY] = transfer
        return transfer

    def _start_once(self) -> None:
        """Per process, after gunicorn forks: the connection pools and the watchdog."""
        if self.watchdog is not None:
            return
        with self.start_lock:
            if self.watchdog is not None:
                return
            self.pools = connections.Pools(self.settings.proxy_ca_bundle)
            self.watchdog = threading.Thread(
                target=self._watch, name="app_proxy-watchdog", daemon=True
            )
            self.watchdog.start()

    def _watch(self) -> None:
        while True:
            asked = time.monotonic() + WATCHDOG_INTERVAL
            time.sleep(WATCHDOG_INTERVAL)
            now = time.monotonic()
            with self.bulkhead.changed:
                self.bulkhead.looked(asked)
                transfers = list(self.bulkhead.active)
            assert self.pools is not None  # (started before the watchdog)
            self.pools.sweep()
            for transfer in transfers:
                assert isinstance(transfer, InFlight)
                transfer.sample(now)
                reason = transfer.overdue(now, self.settings.proxy_min_rate)
                if reason and transfer.cut_reason is None:
                    log.warning("app_proxy %s: transfer cut: %s", transfer.app_id, reason)
                    PROXY_UPSTREAM_ERRORS.labels(transfer.app_id, reason).inc()
                    transfer.cut(reason)
                    self.bulkhead.release(transfer)  # whatever its thread does next

    # -- the transfer ---------------------------------------------------------------

    def forward(self, plan: Plan, inbound: Inbound) -> Response:
        """Send the planned request with the caller's body and stream the answer back,
        within the bulkhead."""
        transfer = self._admit(plan, inbound)
        try:
            upstream = self._send(transfer, plan, inbound)
            response = streaming.answer(transfer, upstream, plan)
        except BaseException:
            self.bulkhead.release(transfer)
            raise
        response.call_on_close(lambda: self.bulkhead.release(transfer))
        return response

    def _send(self, transfer: InFlight, plan: Plan, inbound: Inbound) -> connections.Answer:
        settings = self.settings
        assert self.pools is not None  # (started by _admit)
        try:
            body, read = streaming.request_body(
                transfer, plan.caller, inbound.stream, settings.proxy_digest_max_bytes
            )
        except streaming.CallerBodyError as error:
            streaming.refuse_body(transfer.app_id, error)
        headers = {**plan.forwarded, **plan.headers, **plan.sign(read)}
        headers["Host"] = plan.host
        method, length = plan.caller.method, plan.caller.content_length
        if length is not None:
            headers["Content-Length"] = str(length)
        replayable = read == b"" and method in REPLAYABLE
        started = time.perf_counter()
        for attempt in (1, 2):
            if read is None and body is not None:  # streams: the watchdog times it
                transfer.moving_body(upload=True)
            try:
                # To the address the check approved: no second lookup for DNS
                # rebinding to slip into; Host, SNI and the certificate are the name's.
                upstream = self.pools.send(
                    plan.address,
                    plan.server_name,
                    method,
                    plan.uri,
                    headers,
                    body,
                    self.timeouts,
                    reuse=attempt == 1,
                )
                break
            except streaming.CallerBodyError as error:
                streaming.refuse_body(transfer.app_id, error)
            except connections.Unreachable as error:
                fail_unreachable(transfer, plan, error)
            except connections.MalformedAnswer as error:
                log.warning(
                    "app_proxy %s: %s answered malformed: %s", transfer.app_id, plan.url, error
                )
                fail(
                    transfer.app_id,
                    502,
                    "malformed_answer",
                    "The application's backend sent an answer that is not valid HTTP.",
                )
            except OSError as error:
                if transfer.cut_reason:  # the watchdog cut it; the caller is gone
                    fail(
                        transfer.app_id,
                        504,
                        transfer.cut_reason,
                        "The proxied request did not complete in time.",
                    )
                if isinstance(error, TimeoutError):
                    log.warning("app_proxy %s: %s timed out: %s", transfer.app_id, plan.url, error)
                    fail(
                        transfer.app_id,
                        504,
                        "timeout",
                        "The application's backend did not answer in time.",
                    )
                if attempt == 1 and replayable and isinstance(error, ConnectionError):
                    log.info(
                        "app_proxy %s: connection dropped, sending once more: %s",
                        transfer.app_id,
                        error,
                    )
                    continue
                fail_unreachable(transfer, plan, error)
        PROXY_UPSTREAM_DURATION.labels(transfer.app_id).observe(time.perf_counter() - started)
        transfer.upstream = upstream
        return upstream


def fail_unreachable(transfer: InFlight, plan: Plan, error: BaseException) -> NoReturn:
    log.warning("app_proxy %s: %s failed: %s", transfer.app_id, plan.url, error)
    fail(transfer.app_id, 502, "unreachable", "The application's backend cannot be reached.")


def _stop_reading_caller(caller: Caller, inbound: Inbound) -> None:
    """The refused body will not be read: end the connection after the answer at once,
    rather than have the server drain a slow uploader's body first."""
    if caller.content_length or caller.headers.get("Transfer-Encoding"):
        sock = inbound.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
