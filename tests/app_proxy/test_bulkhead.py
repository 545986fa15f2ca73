"""The embedded transfer's bulkhead at the shipped defaults: honest callers are served,
however many at once, and no caller, application or stall takes the others' slots
(issues: honest concurrency at the defaults; what a hostile peer found)."""

import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from applications_api.app_proxy import in_flight
from applications_api.auth.tokens import issue_token
from tests.support.app import auth_header
from tests.support.upstream import send

python_only = pytest.mark.parametrize("via", ["python"], indirect=True)
MIB = 1 << 20


@pytest.fixture
def users(app):
    """Authorization headers of `n` different readers."""

    def make(n, prefix="caller"):
        with app.app_context():
            return [auth_header(issue_token(f"{prefix}-{i}")) for i in range(n)]

    return make


def proxied_app(create, upstream, name):
    return create(is_proxy_available=True, config={"web_url": f"{upstream.url}/{name}/"})["id"]


def test_a_hundred_concurrent_callers_of_one_application_are_all_served(
    proxy_with, reader, create, upstream
):
    defaults = proxy_with()  # (the test settings leave the bulkhead's defaults alone)
    app_id = proxied_app(create, upstream, "fast")
    url = f"{defaults.url}/api/v1/app_proxy/{app_id}/x"
    with ThreadPoolExecutor(100) as pool:
        statuses = list(
            pool.map(
                lambda _: requests.get(url, headers=reader, timeout=30).status_code, range(100)
            )
        )
    assert statuses == [200] * 100


@python_only
def test_callers_waiting_through_a_stopped_worker_are_all_served(
    proxy_with, reader, create, upstream
):
    """The whole process stopped for a second in the middle of a burst (SIGSTOP, as a
    container runtime or a throttled cgroup would), then continued."""
    defaults = proxy_with()

    def quick(handler, record):
        time.sleep(0.05)
        send(handler, 200, b"done")

    upstream.answer = quick
    url = f"{defaults.url}/api/v1/app_proxy/{proxied_app(create, upstream, 'fast')}/x"
    me = os.getpid()
    pause = subprocess.Popen(
        ["sh", "-c", f"sleep 0.4; kill -STOP {me}; sleep 1; kill -CONT {me}"],
        start_new_session=True,
    )
    try:
        with ThreadPoolExecutor(40) as pool:
            statuses = list(
                pool.map(
                    lambda _: requests.get(url, headers=reader, timeout=30).status_code,
                    range(40),
                )
            )
    finally:
        pause.wait(10)
        os.kill(me, signal.SIGCONT)  # (whatever became of the pause)
    assert statuses == [200] * 40


def test_ten_mib_downloads_four_at_a_time_all_complete(proxy_with, reader, create, upstream):
    defaults = proxy_with()
    body = bytes(range(256)) * (10 * MIB // 256)
    upstream.answer = lambda handler, record: send(handler, 200, body)
    url = f"{defaults.url}/api/v1/app_proxy/{proxied_app(create, upstream, 'files')}/big"

    def download(_):
        with requests.get(url, headers=reader, timeout=60, stream=True) as response:
            return response.status_code, len(response.raw.read())

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(download, range(20)))
    assert results == [(200, 10 * MIB)] * 20


def hold_open(proxy_url, header, app_id, count):
    """POSTs that declare a body and never send it, as one hostile caller would."""
    host, port = proxy_url.removeprefix("http://").split(":")
    held = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(
            f"POST /api/v1/app_proxy/{app_id}/upload HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {header['Authorization']}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        held.append(sock)
    return held


@python_only
def test_one_caller_cannot_take_app_proxy_from_the_others(
    proxy_with, monkeypatch, users, create, upstream
):
    monkeypatch.setattr(in_flight, "BODY_START", 2.0)
    defaults = proxy_with()
    attacker, other = users(2)
    target, elsewhere = proxied_app(create, upstream, "a"), proxied_app(create, upstream, "b")
    held = hold_open(defaults.url, attacker, target, 16)
    try:
        time.sleep(0.5)
        served = [
            requests.get(
                f"{defaults.url}/api/v1/app_proxy/{app_id}/x", headers=other, timeout=10
            ).status_code
            for app_id in (target, elsewhere)
            for _ in range(10)
        ]
        assert served == [200] * 20
        # and the bodies that never come are cut before they hold their slots for long
        deadline = time.monotonic() + 10
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except OSError:
                pass
            assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert time.monotonic() < deadline
    finally:
        for sock in held:
            sock.close()


def stalling(release):
    def answer(handler, record):
        if "/slow/" in record.path:
            release.wait(20)
        send(handler, 200, b"done")

    return answer


@python_only
def test_a_stalled_application_leaves_the_others_their_slots(proxy_with, users, create, upstream):
    defaults = proxy_with()
    callers = users(8)
    release = threading.Event()
    upstream.answer = stalling(release)
    slow, fast = proxied_app(create, upstream, "slow"), proxied_app(create, upstream, "fast")
    slow_url = f"{defaults.url}/api/v1/app_proxy/{slow}/x"
    pool = ThreadPoolExecutor(8)
    stuck = [pool.submit(requests.get, slow_url, headers=h, timeout=30) for h in callers]
    try:
        time.sleep(1)  # the slow application holds all it may, and callers wait behind it
        started = time.monotonic()
        fast_statuses = [
            requests.get(
                f"{defaults.url}/api/v1/app_proxy/{fast}/x", headers=callers[0], timeout=10
            ).status_code
            for _ in range(20)
        ]
        assert fast_statuses == [200] * 20
        assert time.monotonic() - started < 5
    finally:
        release.set()
        refused = [future.result().status_code for future in stuck]
        pool.shutdown()
    # 3 held the slow application's share (of the worker's 4); the rest were refused
    # once it was clear nothing ahead of them moved
    assert refused.count(200) == 3 and refused.count(503) == 5


@python_only
@pytest.mark.parametrize(
    "apps, callers, settings, share",
    [
        (4, 4, {}, "app_proxy's"),  # 4 applications, 4 callers: the worker's 4 slots
        (1, 4, {}, "this application's"),  # one application: 3
        (4, 1, {}, "your"),  # one caller: 2
    ],
    ids=["the worker's", "an application's", "a caller's"],
)
def test_every_share_is_driven_to_refusal(
    proxy_with, users, create, upstream, apps, callers, settings, share
):
    defaults = proxy_with(**settings)
    release = threading.Event()
    upstream.answer = stalling(release)
    app_ids = [proxied_app(create, upstream, f"slow/{n}") for n in range(apps)]
    headers = users(callers, prefix=share.split("'")[0])
    holders = 4 if share == "app_proxy's" else 3 if share == "this application's" else 2
    pool = ThreadPoolExecutor(holders)
    held = [
        pool.submit(
            requests.get,
            f"{defaults.url}/api/v1/app_proxy/{app_ids[n % apps]}/x",
            headers=headers[n % callers],
            timeout=30,
        )
        for n in range(holders)
    ]
    try:
        deadline = time.monotonic() + 5
        while len(upstream.received) < holders:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # one more of the same kind: a new application and caller for the worker's share
        app_id = proxied_app(create, upstream, "slow/extra") if apps == 4 else app_ids[0]
        header = users(1, prefix="extra")[0] if callers == 4 else headers[0]
        started = time.monotonic()
        refused = requests.get(
            f"{defaults.url}/api/v1/app_proxy/{app_id}/x", headers=header, timeout=10
        )
        assert refused.status_code == 503
        assert f"({share} share of this worker is taken)" in refused.json()["message"]
        assert refused.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 1
    finally:
        release.set()
        assert [future.result().status_code for future in held] == [200] * holders
        pool.shutdown()


@python_only
def test_a_request_over_its_share_waits_while_the_slots_turn_over(
    proxy_with, reader, create, upstream
):
    narrow = proxy_with(APP_PROXY_MAX_IN_FLIGHT_PER_APP="1", APP_PROXY_MAX_IN_FLIGHT_PER_CALLER="1")

    def quick(handler, record):
        time.sleep(0.05)
        send(handler, 200, b"done")

    upstream.answer = quick
    url = f"{narrow.url}/api/v1/app_proxy/{proxied_app(create, upstream, 'q')}/x"
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(lambda _: requests.get(url, headers=reader, timeout=30).status_code, range(10))
        )
    assert statuses == [200] * 10


@python_only
def test_no_wait_refuses_at_once(proxy_with, reader, create, upstream):
    strict = proxy_with(APP_PROXY_MAX_IN_FLIGHT_PER_APP="1", APP_PROXY_QUEUE_SECONDS="0")
    release = threading.Event()
    upstream.answer = stalling(release)
    url = f"{strict.url}/api/v1/app_proxy/{proxied_app(create, upstream, 'slow')}/x"
    holder = threading.Thread(target=requests.get, args=(url,), kwargs={"headers": reader})
    holder.start()
    try:
        deadline = time.monotonic() + 5
        while not upstream.received:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        assert requests.get(url, headers=reader, timeout=10).status_code == 503
        assert time.monotonic() - started < 0.2
    finally:
        release.set()
        holder.join(10)
