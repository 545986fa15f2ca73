"""The embedded transfer's bulkhead: how many proxied exchanges one worker holds at once,
so that slow backends and slow callers take a bounded share of its threads, never the
registry's.

Three shares, each a cap on exchanges in flight: the worker's (APP_PROXY_MAX_IN_FLIGHT),
one application's (_PER_APP, below the worker's, so other applications always find a
slot) and one caller's (_PER_CALLER, so one token cannot fill it). A request over a share
waits for it (up to APP_PROXY_QUEUE_SECONDS), but only while that share turns over (one
of its slots was given back in the last STALL seconds) or its exchanges move bytes: fast
traffic turns slots over in milliseconds and every honest caller is served; exchanges
that stall (a trickling backend, an upload that does not come) free nothing, so the
request behind them is refused with a 503 at once and gives its thread back. When a slot
frees, the waiter whose application holds the fewest goes first.

Those STALL seconds count only time the process was seen to run. When the whole worker
is paused (a stopped or throttled container, a starved box, a long collection), nothing
in it can move or give a slot back, and judging its exchanges by the wall clock would
refuse every waiter the moment it resumes: a look that comes more than PAUSE later than
asked (a waiter's, or the watchdog's) starts every share's STALL seconds again.
"""

import threading
import time
from collections import Counter
from typing import Protocol

POLL = 0.05  # seconds between a waiter's looks at whether what it waits for still moves
STALL = 0.5  # seconds without a slot given back after which a share counts as stuck
PAUSE = 0.1  # seconds a look may come later than asked before the process counts as paused


class Exchange(Protocol):
    app_id: int
    caller: int  # the user id

    def begin(self, now: float) -> None:
        """It is admitted at monotonic time `now`."""
        ...

    def moving(self, now: float) -> bool:
        """Whether it looks set to end soon: it moves bytes, or has just begun."""
        ...


class Busy(Exception):
    """No slot: `share` names the one that is taken."""

    def __init__(self, share: str) -> None:
        super().__init__(share)
        self.share = share


class Bulkhead:
    def __init__(self, limit: int, per_app: int, per_caller: int, wait: float) -> None:
        self.limit, self.per_app, self.per_caller, self.wait = limit, per_app, per_caller, wait
        self.changed = threading.Condition()
        self.active: set[Exchange] = set()
        self.by_app: Counter[int] = Counter()
        self.by_caller: Counter[int] = Counter()
        self.waiting: list[Exchange] = []  # in the order they came
        self.given_back: dict[tuple[str, int], float] = {}  # share -> when a slot last came back
        self.resumed = -STALL  # when the process was last seen to resume from a pause

    def admit(self, exchange: Exchange) -> None:
        """Take a slot for `exchange`, waiting for it as the module says; raises Busy."""
        deadline = time.monotonic() + self.wait
        with self.changed:
            self.waiting.append(exchange)
            try:
                while True:
                    held = self._held_share(exchange)
                    if held is None and self._next_in_line(exchange):
                        exchange.begin(time.monotonic())
                        self.active.add(exchange)
                        self.by_app[exchange.app_id] += 1
                        self.by_caller[exchange.caller] += 1
                        return
                    now = time.monotonic()
                    if held is not None:
                        share, key, holders = held
                        since = max(self.given_back.get(key, -STALL), self.resumed)
                        moving = now - since < STALL or any(h.moving(now) for h in holders)
                        if now >= deadline or not moving:
                            raise Busy(share)
                    self.changed.wait(POLL)
                    self.looked(now + POLL)
            finally:
                self.waiting.remove(exchange)
                self.changed.notify_all()  # (the next in line may be another waiter)

    def release(self, exchange: Exchange) -> None:
        """Give `exchange`'s slot back; releasing it again does nothing."""
        with self.changed:
            if exchange not in self.active:
                return
            self.active.discard(exchange)
            for counts, key in ((self.by_app, exchange.app_id), (self.by_caller, exchange.caller)):
                counts[key] -= 1
                if not counts[key]:
                    del counts[key]  # (bounded by what is in flight)
            now = time.monotonic()
            if len(self.given_back) > 1000:  # (only the last STALL seconds matter)
                self.given_back = {k: t for k, t in self.given_back.items() if now - t < STALL}
            for share in (("worker", 0), ("app", exchange.app_id), ("caller", exchange.caller)):
                self.given_back[share] = now
            self.changed.notify_all()

    def looked(self, asked: float) -> None:
        """A look at the shares that was asked for at monotonic time `asked` (an
        earlier one may come, when notified); one that came more than PAUSE later means
        the process was paused until now. Called with `changed` held."""
        now = time.monotonic()
        if now - asked > PAUSE:
            self.resumed = now

    def _held_share(self, exchange: Exchange) -> tuple[str, tuple[str, int], list[Exchange]] | None:
        """The share `exchange` is over (its name in the 503, its key in given_back) and
        the exchanges holding it; None: it fits."""
        if len(self.active) >= self.limit:
            return "app_proxy's", ("worker", 0), list(self.active)
        app, caller = exchange.app_id, exchange.caller
        if self.by_app[app] >= self.per_app:
            return "this application's", ("app", app), [e for e in self.active if e.app_id == app]
        if self.by_caller[caller] >= self.per_caller:
            return "your", ("caller", caller), [e for e in self.active if e.caller == caller]
        return None

    def _next_in_line(self, exchange: Exchange) -> bool:
        """Whether no other waiter that fits too has an application holding fewer slots
        (or as few, and came earlier)."""
        mine = self.by_app[exchange.app_id]
        earlier = True
        for other in self.waiting:
            if other is exchange:
                earlier = False
                continue
            held = self.by_app[other.app_id]
            if (held < mine or (held == mine and earlier)) and self._held_share(other) is None:
                return False
        return True
