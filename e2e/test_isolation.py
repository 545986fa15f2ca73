"""A slow caller or a slow backend cannot starve the registry: the API and the
healthcheck keep answering while app_proxy is under attack, through nginx (the
deployment) and on gunicorn alone (the embedded transfer). Every loop here is bounded
in count and time; the figures are printed (pytest -s shows them)."""

import collections
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support.upstream import send

ATTACKERS = 64  # of each kind


def trickle(handler, record):
    """One byte a second, for at most two minutes, until the reader is gone."""
    handler.send_response(200)
    handler.send_header("Content-Length", "120")
    handler.end_headers()
    try:
        for _ in range(120):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def answer(handler, record):
    if record.path.endswith("/trickle"):
        trickle(handler, record)
    else:  # the uploads: the body was read (or cut) by now
        send(handler, 200, b"stored")


class Attack:
    """Connections held open as a hostile client holds them, all from one thread:
    uploads that declare 1000 bytes and send one every 5 s, downloads read as the
    backend trickles them, and (optionally) request heads sent a byte every 5 s."""

    def __init__(self, url, token, upload_app, download_app, slow_heads=0):
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        auth = f"Authorization: Token {token}\r\n"
        self.heads = {
            "upload": (
                f"POST /api/v1/app_proxy/{upload_app}/upload HTTP/1.1\r\n"
                f"Host: {host}\r\n{auth}Content-Length: 1000\r\n\r\n"
            ).encode(),
            "download": (
                f"GET /api/v1/app_proxy/{download_app}/trickle HTTP/1.1\r\n"
                f"Host: {host}\r\n{auth}\r\n"
            ).encode(),
        }
        self.sockets: list[list[Any]] = []  # [kind, socket, received bytes, open, head bytes sent]
        for kind, count in (
            ("upload", ATTACKERS),
            ("download", ATTACKERS),
            ("slow_head", slow_heads),
        ):
            for _ in range(count):
                sock = socket.create_connection(self.address, timeout=5)
                if kind != "slow_head":
                    sock.sendall(self.heads[kind])
                sock.setblocking(False)
                self.sockets.append([kind, sock, b"", True, 0])
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self, budget=180):
        ends = time.monotonic() + budget
        next_drip = time.monotonic() + 5
        slow_head = b"GET /api/v1/healthcheck/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 200
        while not self.stopping.is_set() and time.monotonic() < ends:
            drip = time.monotonic() >= next_drip
            if drip:
                next_drip += 5
            for entry in self.sockets:
                kind, sock, received, is_open, sent = entry
                if not is_open:
                    continue
                try:
                    if drip and kind == "upload":
                        sock.send(b"x")
                    if drip and kind == "slow_head" and sent < len(slow_head):
                        entry[4] += sock.send(slow_head[sent : sent + 1])
                    data = sock.recv(65536)
                    if data:
                        entry[2] = received + data
                    else:
                        entry[3] = False
                except BlockingIOError:
                    pass
                except OSError:
                    entry[3] = False
            time.sleep(0.1)

    def in_flight(self):
        return collections.Counter(kind for kind, _, _, is_open, _ in self.sockets if is_open)

    def statuses(self):
        """kind → Counter of the status each connection was answered with (None: none)."""
        answered: collections.defaultdict[str, collections.Counter[int | None]]
        answered = collections.defaultdict(collections.Counter)
        for kind, _, received, _, _ in self.sockets:
            status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/") else None
            answered[kind][status] += 1
        return answered

    def retry_after_on_every_503(self):
        return all(
            b"\r\nretry-after: 1\r\n" in received.lower()
            for _, _, received, _, _ in self.sockets
            if received.startswith(b"HTTP/1.1 503")
        )

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        for _, sock, *_ in self.sockets:
            sock.close()


def timed(url, headers=None):
    started = time.monotonic()
    try:
        status = requests.get(url, headers=headers, timeout=5).status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - started


def p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def check_the_registry_answers(base, staff, label):
    api = [timed(f"{base}/api/v1/applications/", staff) for _ in range(100)]
    health = [timed(f"{base}/api/v1/healthcheck/") for _ in range(20)]
    api_p99, health_p99 = p99([s for _, s in api]), p99([s for _, s in health])
    print(
        f"\n{label}: 100 API lists: {collections.Counter(s for s, _ in api)}, "
        f"p99 {api_p99 * 1000:.0f} ms; 20 healthchecks: "
        f"{collections.Counter(s for s, _ in health)}, p99 {health_p99 * 1000:.0f} ms"
    )
    assert [status for status, _ in api + health] == [200] * 120
    assert api_p99 < 1 and health_p99 < 1


def proxied_apps(stack, staff, upstream):
    ids = []
    for name in ("E2E uploads", "E2E downloads"):
        created = requests.post(
            f"{stack.url}/api/v1/applications/",
            headers=staff,
            timeout=10,
            json={
                "name": name,
                "application_type": "extension",
                "is_proxy_available": True,
                "config": {"web_url": f"{upstream.url}/{name.split()[1]}/"},
            },
        )
        ids.append(created.json()["id"])
    return ids


@pytest.fixture
def attacked(upstream):
    upstream.answer = answer
    attacks: list[Attack] = []
    yield attacks
    for attack in attacks:
        attack.stop()


def test_through_nginx_an_attack_on_app_proxy_costs_the_registry_nothing(
    stack, staff, upstream, attacked
):
    upload_app, download_app = proxied_apps(stack, staff, upstream)
    attack = Attack(stack.url, stack.staff_token, upload_app, download_app, slow_heads=32)
    attacked.append(attack)
    time.sleep(6)  # every upload has dripped once, every download has bytes coming
    check_the_registry_answers(stack.url, staff, "through nginx, under attack")
    in_flight = attack.in_flight()
    print(
        f"in flight at the end: {dict(in_flight)}; answered: "
        f"{ {kind: dict(c) for kind, c in attack.statuses().items()} }"
    )
    assert in_flight == {"upload": ATTACKERS, "download": ATTACKERS, "slow_head": 32}
    attack.stop()
    check_the_registry_answers(stack.url, staff, "through nginx, right after")


def test_on_gunicorn_alone_the_bulkhead_refuses_what_is_over_its_share(
    stack, staff, upstream, attacked
):
    alone = stack.gunicorn_alone()
    upload_app, download_app = proxied_apps(stack, staff, upstream)
    attack = Attack(alone.url, stack.staff_token, upload_app, download_app)
    attacked.append(attack)
    time.sleep(6)
    check_the_registry_answers(alone.url, staff, "gunicorn alone, under attack")
    answered = attack.statuses()
    print(
        f"answered: { {kind: dict(c) for kind, c in answered.items()} }; "
        f"in flight: {dict(attack.in_flight())}"
    )
    # one token: each worker's share of 2 per caller, for both kinds together
    through = 2 * int(stack.env["GUNICORN_WORKERS"])
    assert answered["upload"][503] + answered["download"][503] >= 2 * ATTACKERS - through
    assert set(answered["upload"]) <= {503, None} and set(answered["download"]) <= {503, 200}
    assert attack.retry_after_on_every_503()
    attack.stop()
    check_the_registry_answers(alone.url, staff, "gunicorn alone, right after")


def test_idle_gaps_near_gunicorns_keep_alive_never_give_a_502(stack, staff):
    """nginx lets its idle upstream connections go before gunicorn closes them, so no
    request is ever sent on a connection gunicorn is closing."""
    statuses: collections.Counter[int] = collections.Counter()
    body = {"name": "E2E burst", "application_type": "commerce"}

    def post(_):
        return requests.post(
            f"{stack.url}/api/v1/applications/", json=body, headers=staff, timeout=10
        ).status_code

    with ThreadPoolExecutor(25) as pool:
        for burst in range(12):
            statuses.update(pool.map(post, range(25)))
            if burst < 11:
                time.sleep(4.9 + 0.2 * burst / 10)
    print(f"\n300 POSTs in bursts of 25, idle gaps 4.9-5.1 s: {dict(statuses)}")
    assert statuses == {201: 300}
