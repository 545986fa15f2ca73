"""Every share of the bulkhead driven to refusal, one at a time: the worker's, one
application's, one caller's. Exactly the limit is admitted, one more is refused (naming
the share that is full), and a slot given back is taken again."""

import threading
import time

import pytest
import requests

from applications_api.app_proxy.bulkhead import Bulkhead, Busy
from applications_api.app_proxy.in_flight import InFlight
from applications_api.auth.tokens import issue_token
from tests.support.app import auth_header
from tests.support.upstream import send

python_only = pytest.mark.parametrize("via", ["python"], indirect=True)


class Stalled:
    """An exchange that holds its slot and moves nothing: a waiter behind it is refused
    at once."""

    def __init__(self, app_id, caller):
        self.app_id, self.caller = app_id, caller

    def begin(self, now):
        pass

    def moving(self, now):
        return False


# (share, limits as (worker, per app, per caller), the exchange number n is (app, caller))
SHARES = {
    "app_proxy's": ((3, 10, 10), lambda n: (n, n)),
    "this application's": ((10, 3, 10), lambda n: (1, n)),
    "your": ((10, 10, 3), lambda n: (n, 1)),
}


@pytest.mark.parametrize("share", SHARES)
def test_each_share_admits_exactly_its_limit(share):
    (limit, per_app, per_caller), who = SHARES[share]
    bulkhead = Bulkhead(limit, per_app, per_caller, wait=0.5)
    held = [Stalled(*who(n)) for n in range(3)]
    for exchange in held:
        bulkhead.admit(exchange)  # the third: exactly at the limit, still admitted
    started = time.monotonic()
    with pytest.raises(Busy) as refused:
        bulkhead.admit(Stalled(*who(3)))
    assert refused.value.share == share
    assert time.monotonic() - started < 0.4  # stalled holders: refused without the wait
    bulkhead.release(held[0])
    bulkhead.admit(Stalled(*who(4)))  # the slot given back is there again
    assert len(bulkhead.active) == 3


@pytest.mark.parametrize("share", SHARES)
def test_one_under_each_limit_leaves_room_for_others(share):
    (limit, per_app, per_caller), who = SHARES[share]
    bulkhead = Bulkhead(limit, per_app, per_caller, wait=0)
    for n in range(2):
        bulkhead.admit(Stalled(*who(n)))
    bulkhead.admit(Stalled(*who(2)))
    assert len(bulkhead.active) == 3
    assert dict(bulkhead.by_app) and dict(bulkhead.by_caller)


def test_releasing_twice_gives_back_one_slot():
    bulkhead = Bulkhead(10, 2, 10, wait=0)  # (the application's share is what counts)
    first, second = Stalled(1, 1), Stalled(1, 1)
    bulkhead.admit(first)
    bulkhead.admit(second)
    bulkhead.release(first)
    bulkhead.release(first)
    bulkhead.admit(Stalled(1, 1))
    with pytest.raises(Busy):
        bulkhead.admit(Stalled(1, 1))


def waiting_for(bulkhead, exchange):
    """`exchange` waiting for its slot in a thread of its own: a list that gets what
    admit did (None: admitted, or the Busy)."""
    outcome: list[Busy | None] = []

    def admit():
        try:
            bulkhead.admit(exchange)
            outcome.append(None)
        except Busy as busy:
            outcome.append(busy)

    thread = threading.Thread(target=admit)
    thread.start()
    return thread, outcome


def test_a_pause_of_the_whole_process_turns_no_waiter_away():
    bulkhead = Bulkhead(10, 10, 1, wait=5)
    holder = InFlight(1, 1, None, 300)
    bulkhead.admit(holder)
    thread, outcome = waiting_for(bulkhead, InFlight(1, 1, None, 300))
    time.sleep(0.05)  # (the holder has just begun: the waiter waits)
    with bulkhead.changed:  # nothing in the bulkhead runs, as in a stopped worker
        time.sleep(0.8)
    time.sleep(0.1)  # it resumes with the holder 0.9 s old, and no slot given back
    bulkhead.release(holder)
    thread.join(5)
    assert outcome == [None]


def test_the_time_spent_waiting_is_not_the_exchanges():
    bulkhead = Bulkhead(10, 10, 1, wait=5)
    holder, waiter = InFlight(1, 1, None, 300), InFlight(1, 1, None, 300)
    bulkhead.admit(holder)
    thread, outcome = waiting_for(bulkhead, waiter)
    time.sleep(0.15)  # (before the holder counts as stalled)
    released = time.monotonic()
    bulkhead.release(holder)
    thread.join(5)
    assert outcome == [None]
    assert waiter.started >= released and waiter.deadline >= released + 300
    assert waiter.moving(time.monotonic())  # it has just begun


# -- the same through the embedded transfer, with a backend that stalls ----------------


@pytest.fixture
def stalling_backend(upstream):
    release = threading.Event()

    def answer(handler, record):
        release.wait(20)
        send(handler, 200, b"done")

    upstream.answer = answer
    yield release
    release.set()


@python_only
@pytest.mark.parametrize("share", SHARES)
def test_the_transfer_refuses_one_over_each_share_with_a_503(
    proxy_with, app, create, upstream, stalling_backend, share
):
    (limit, per_app, per_caller), who = SHARES[share]
    proxy = proxy_with(
        APP_PROXY_MAX_IN_FLIGHT=str(limit),
        APP_PROXY_MAX_IN_FLIGHT_PER_APP=str(per_app),
        APP_PROXY_MAX_IN_FLIGHT_PER_CALLER=str(per_caller),
        APP_PROXY_QUEUE_SECONDS="0",
    )
    apps, callers = {}, {}

    def url_and_header(n):
        app_n, caller_n = who(n)
        if app_n not in apps:
            apps[app_n] = create(
                is_proxy_available=True, config={"web_url": f"{upstream.url}/{app_n}/"}
            )["id"]
        if caller_n not in callers:
            with app.app_context():
                callers[caller_n] = auth_header(issue_token(f"caller-{caller_n}"))
        return f"{proxy.url}/api/v1/app_proxy/{apps[app_n]}/x", callers[caller_n]

    holders = []
    for n in range(3):
        url, header = url_and_header(n)
        holders.append(
            threading.Thread(target=requests.get, args=(url,), kwargs={"headers": header})
        )
        holders[-1].start()
    deadline = time.monotonic() + 10
    while len(upstream.received) < 3:  # all three at the backend: exactly the limit held
        assert time.monotonic() < deadline, len(upstream.received)
        time.sleep(0.01)
    try:
        url, header = url_and_header(3)
        refused = requests.get(url, headers=header, timeout=10)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert f"{share} share" in refused.json()["message"]
        assert len(upstream.received) == 3
    finally:
        stalling_backend.set()
        for holder in holders:
            holder.join(10)
    url, header = url_and_header(3)
    assert requests.get(url, headers=header, timeout=10).status_code == 200  # given back
