"""A failover under load: the real app served over HTTP on a libpq multi-host URL
(primary, standby; target_session_attrs=read-write), caches on, writers and readers
running while the primary stops at once (`-m immediate`) and the standby is promoted.

Meanwhile every answer is a fast JSON 503 (or a 2xx), never a 500 or a hang; 2xx again
soon after the promotion; the change feed listens again on the new primary and every
cache starts over; and what was acknowledged is stored on the new primary (with
synchronous replication all of it; asynchronously, what is lost is measured)."""

import logging
import threading
import time
from dataclasses import dataclass

import flask_migrate
import psycopg
import pytest
import requests

from applications_api import create_app
from applications_api.auth.tokens import issue_token
from harness.clusters import primary_and_standby
from tests.support.app import (
    BEHIND_A_POOLER,
    auth_header,
    caches_trusted,
    dispose,
    make_env,
    postgresql_only,
)
from tests.support.live_server import LiveServer

pytestmark = [
    postgresql_only,
    pytest.mark.skipif(BEHIND_A_POOLER, reason="makes PostgreSQL clusters of its own"),
]

log = logging.getLogger(__name__)

LIST = "/api/v1/applications/"
WITHIN = 0.1  # a change in plain SQL is honoured this soon (tests/test_freshness_servers.py)
FAST = 2.0  # seconds: the longest any answer may take, failover or not
BACK_WITHIN = 10.0  # seconds from the promotion to steady 2xx answers
SETTLED = 2.0  # seconds of 2xx answers only that count as steady
WRITERS, READERS = 3, 3


@dataclass
class Answer:
    sent: float
    answered: float
    status: int  # 0: no answer within the client's timeout, or the connection broke
    json: bool
    name: str | None = None  # the application a POST created


class Load:
    """Threads sending requests until stopped, recording every answer."""

    def __init__(self, url, headers):
        self.url, self.headers = url, headers
        self.answers: list[Answer] = []
        self.attempted: set[str] = set()
        self.running = True
        writers = [threading.Thread(target=self._write, args=(n,)) for n in range(WRITERS)]
        self.threads = writers + [threading.Thread(target=self._read) for _ in range(READERS)]
        for thread in self.threads:
            thread.start()

    def _send(self, session, method, name=None):
        body = {"name": name, "application_type": "extension"} if name else None
        sent = time.monotonic()
        try:
            response = session.request(
                method, self.url + LIST, json=body, headers=self.headers, timeout=(1, FAST * 2)
            )
            status = response.status_code
            is_json = response.headers.get("Content-Type", "").startswith("application/json")
        except requests.RequestException:
            status, is_json = 0, False
        self.answers.append(Answer(sent, time.monotonic(), status, is_json, name))
        return status

    def _write(self, n):
        with requests.Session() as session:
            k = 0
            while self.running:
                name = f"w{n}-{k}"
                self.attempted.add(name)
                if self._send(session, "POST", name) != 201:
                    time.sleep(0.02)  # (what a client does after a 503)
                k += 1

    def _read(self):
        with requests.Session() as session:
            while self.running:
                if self._send(session, "GET") != 200:
                    time.sleep(0.02)

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.join()

    def steady_since(self, after):
        """When 2xx answers began that nothing but 2xx followed (None: not yet)."""
        answers = sorted(self.answers, key=lambda answer: answer.answered)
        since = None
        for answer in answers:
            if answer.answered < after:
                continue
            if answer.status in (200, 201):
                since = answer.answered if since is None else since
            else:
                since = None
        return since


def status(server, headers):
    return requests.get(server.url + LIST, headers=headers, timeout=FAST).status_code


def deactivate(connection, username):
    connection.execute("UPDATE users SET is_active = false WHERE username = %s", (username,))


@pytest.mark.parametrize("synchronous", [True, False], ids=["synchronous", "asynchronous"])
def test_a_failover_under_load(synchronous):
    with primary_and_standby(synchronous) as (primary, standby):
        primary.execute("CREATE DATABASE failover")
        url = (
            f"postgresql://postgres@{primary.address},{standby.address}/failover"
            "?target_session_attrs=read-write"
        )
        env = make_env(url, AUTH_CACHE_SECONDS="60", APP_PROXY_CACHE_SECONDS="60")
        app = create_app(env)
        try:
            with app.app_context():
                flask_migrate.upgrade()
                writer = auth_header(issue_token("writer", staff=True))
                before = auth_header(issue_token("cached-before"))  # its user changes unheard
                after = auth_header(issue_token("cached-after"))  # its user changes heard
            with LiveServer(app) as server:
                figures = fail_over(app, server, primary, standby, writer, before, after)
        finally:
            dispose(app)
    figures["replication"] = "synchronous" if synchronous else "asynchronous"
    line = "failover: " + ", ".join(f"{name} {value}" for name, value in figures.items())
    print(line)
    log.warning(line)
    assert figures["lost"] == 0 or not synchronous, "an acknowledged write was lost"


def promote(standby, took):
    standby.promote()
    took.append(time.monotonic())


def connects(cluster):
    try:
        psycopg.connect(cluster.url("failover"), connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def fail_over(app, server, primary, standby, writer, before, after):
    caches_trusted(app)
    for _ in range(3):
        assert status(server, before) == 200  # (cached now, trusted while the feed hears)
    # The session that changes the new primary first, opened while it is a standby;
    # from just before the promotion until that change is made the standby takes no new
    # connection, so the change feed cannot hear it: no cache entry from before the
    # failover may outlive it.
    changer = psycopg.connect(standby.url("failover"), autocommit=True)
    took: list[float] = []  # when the promotion returned
    load = Load(server.url, writer)
    try:
        time.sleep(1.5)
        stopped = time.monotonic()
        primary.stop_immediately()
        time.sleep(1)  # (requests meanwhile find a standby: read-only)
        standby.refuse_connections(True)
        while connects(standby):
            time.sleep(0.01)
        promoted = time.monotonic()
        promotion = threading.Thread(target=promote, args=(standby, took))
        promotion.start()
        while True:  # as soon as it takes writes
            try:
                deactivate(changer, "cached-before")
                break
            except psycopg.errors.ReadOnlySqlTransaction:
                time.sleep(0.002)
        feed = app.extensions["applications_api"].token_cache.feed
        assert not feed.listening
        standby.refuse_connections(False)
        changed = time.monotonic()
        promotion.join()
        deadline = promoted + BACK_WITHIN + SETTLED
        relistened = None
        while (since := load.steady_since(promoted)) is None or time.monotonic() < since + SETTLED:
            assert time.monotonic() < deadline, "no steady 2xx answers after the promotion"
            if relistened is None and feed.listening:
                relistened = time.monotonic()
            time.sleep(0.02)
    finally:
        load.stop()
    answers = load.answers
    statuses = {answer.status for answer in answers}
    assert statuses <= {200, 201, 503}, f"answers during the failover: {sorted(statuses)}"
    assert all(answer.json for answer in answers)
    slowest = max(answer.answered - answer.sent for answer in answers)
    assert slowest < FAST
    first_ok = min(
        answer.answered
        for answer in answers
        if answer.status in (200, 201) and answer.answered > promoted
    )
    steady = load.steady_since(promoted)
    assert steady - promoted < BACK_WITHIN

    # The feed listens on the new primary, and the caches started over.
    caches_trusted(app)
    relistened = relistened or time.monotonic()
    assert status(server, before) == 401, "a cached user outlived a change made unheard"
    for _ in range(3):
        assert status(server, after) == 200
    deactivate(changer, "cached-after")
    started = time.monotonic()
    while status(server, after) != 401:
        assert time.monotonic() - started < WITHIN, "a cached user outlived its row"
    heard = time.monotonic() - started
    changer.close()

    acknowledged = {answer.name for answer in answers if answer.status == 201}
    stored = {row[0] for row in standby.execute("SELECT name FROM applications", (), "failover")}
    assert stored <= load.attempted
    return {
        "requests": len(answers),
        "503s": sum(answer.status == 503 for answer in answers),
        "slowest answer s": f"{slowest:.3f}",
        "promotion took s": f"{took[0] - promoted:.2f}",
        "first 2xx after the promotion s": f"{first_ok - promoted:.2f}",
        "steady 2xx after s": f"{steady - promoted:.2f}",
        "refused for s": f"{steady - stopped:.2f}",
        "feed trusted again after s": f"{relistened - promoted:.2f}",
        "promoted and changed unheard after s": f"{changed - promoted:.3f}",
        "plain-SQL change honoured in s": f"{heard:.3f}",
        "writes attempted": len(load.attempted),
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "lost": len(acknowledged - stored),
        "stored unacknowledged": len(stored - acknowledged),
    }
