"""One proxied exchange of the embedded transfer while it is in flight: what the bulkhead
admits and counts as moving, what the watchdog samples, finds overdue and cuts."""

import socket
import time

from .connections import Answer

# Seconds a body may move slower than APP_PROXY_MIN_RATE at first. The watchdog sees an
# upload's progress one read (UPLOAD_READ_SIZE) at a time, so MIN_RATE × RATE_GRACE must
# exceed a read, or an honest client at the minimum rate could be cut (4 KiB/s × 30 s).
RATE_GRACE = 30.0
# Seconds a caller's body may take to deliver its first read: a declared body that does
# not come is cut before it holds a slot for long (a read at 1.6 KB/s, a 2G link's pace).
BODY_START = 10.0
# What the bulkhead counts as moving (bulkhead.py): bytes a second either way, or an
# exchange younger than MOVING_GRACE seconds.
MOVING_RATE = 8192
MOVING_GRACE = 0.25


class InFlight:
    """One proxied exchange in flight: what the bulkhead admits, the watchdog watches and
    may cut."""

    def __init__(
        self, app_id: int, caller: int, caller_socket: socket.socket | None, deadline: float
    ) -> None:
        self.app_id, self.caller = app_id, caller
        self.caller_socket = caller_socket
        self.allowed = deadline  # seconds it may take once admitted
        self.upstream: Answer | None = None  # the backend's, once it answered
        self.cut_reason: str | None = None
        self.body_started: float | None = None  # monotonic time a body began to move; None between
        self.uploading = False  # the body moving is the caller's
        self.body_bytes = 0
        self.total_bytes = 0  # both ways, all along
        self.rate = 0.0  # bytes a second over the watchdog's last interval
        self.begin(time.monotonic())

    def begin(self, now: float) -> None:
        """Its clocks start again when the bulkhead admits it: the time it waited for a
        slot is neither its deadline's nor a sign that it stalls."""
        self.started = now
        self.deadline = now + self.allowed
        self.sampled = (now, self.total_bytes)

    def moving_body(self, upload: bool = False) -> None:
        self.body_started, self.body_bytes, self.uploading = time.monotonic(), 0, upload

    def waiting(self) -> None:
        self.body_started = None  # waiting for the backend is bounded by its own timeout

    def moved(self, count: int) -> None:
        self.body_bytes += count
        self.total_bytes += count

    def sample(self, now: float) -> None:
        """The rate since the last sample (the watchdog's)."""
        then, total = self.sampled
        if now > then:
            self.rate = (self.total_bytes - total) / (now - then)
        self.sampled = (now, self.total_bytes)

    def moving(self, now: float) -> bool:
        then, total = self.sampled  # (and the rate since then: a young exchange has one too)
        current = (self.total_bytes - total) / max(now - then, 0.001)
        return now - self.started < MOVING_GRACE or max(self.rate, current) >= MOVING_RATE

    def overdue(self, now: float, min_rate: int) -> str | None:
        if now > self.deadline:
            return "deadline"
        if self.body_started is None:
            return None
        if self.uploading and not self.body_bytes and now - self.body_started > BODY_START:
            return "too_slow"
        if min_rate:
            elapsed = now - self.body_started - RATE_GRACE
            if elapsed > 0 and self.body_bytes < min_rate * elapsed:
                return "too_slow"
        return None

    def cut(self, reason: str) -> None:
        """Unblock whatever this transfer's thread waits on, and make it give up."""
        self.cut_reason = reason
        if self.caller_socket is not None:
            try:
                self.caller_socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.upstream is not None:
            try:
                self.upstream.shutdown()
            except (OSError, ValueError, RuntimeError):
                pass
