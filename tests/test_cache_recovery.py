"""The caches' two other guarantees, each looked at before anything is put back:

- an entry expires after its time limit, on a clock the test moves (nothing changes in
  the database meanwhile, so no invalidation can pass the test in its place);
- on PostgreSQL, a change made while a process's listener was gone is never served
  stale once the listener is back: the reconnect itself moves the generation on.
"""

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from applications_api import cache as cache_module
from applications_api.auth.tokens import issue_token
from applications_api.cache import ChangeFeed, FreshCache
from tests.support.app import (
    ON_POSTGRESQL,
    auth_header,
    caches_trusted,
    database_env,
    direct_url,
    postgresql_only,
)

LIST = "/api/v1/applications/"


def feed_at(database_url, listen_url=None, connect_timeout=3.0):
    """A change feed as the service builds one (DATABASE_CONNECT_TIMEOUT's default)."""
    return ChangeFeed(database_url, listen_url, connect_timeout)


class Clock:
    """time as cache.py reads it, moved by hand."""

    def __init__(self, now=1000.0):
        self.now = now

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        time.sleep(seconds)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cache_module, "time", clock)
    return clock


def test_an_entry_is_served_until_its_time_limit_and_not_at_it(tmp_path, clock):
    feed = feed_at(f"sqlite:///{tmp_path / 'feed.db'}")
    fresh = FreshCache(feed, "auth", ttl=30)
    generation = fresh.generation()
    fresh.put("key", "value", generation)
    before = dict(feed.generations)
    clock.now += 29.999
    assert fresh.get("key") == "value"
    clock.now += 0.001  # exactly the limit: expired
    assert fresh.get("key") is None
    assert feed.generations == before  # (expired by time alone: nothing changed)


def test_a_time_limit_of_zero_caches_nothing_and_never_asks_the_feed(tmp_path, clock):
    feed = feed_at(f"sqlite:///{tmp_path / 'feed.db'}")
    fresh = FreshCache(feed, "auth", ttl=0)
    assert fresh.generation() is None
    fresh.put("key", "value", fresh.generation())
    fresh.put("key", "value", 0)
    assert fresh.get("key") is None
    # a cache turned off costs nothing: no probe opened the file, no listener connects
    assert not (tmp_path / "feed.db").exists()


@pytest.mark.parametrize("ttl", [0.5, 1])
def test_a_time_limit_of_a_second_or_less_still_caches(tmp_path, clock, ttl):
    feed = feed_at(f"sqlite:///{tmp_path / 'feed.db'}")
    fresh = FreshCache(feed, "auth", ttl=ttl)
    fresh.put("key", "value", fresh.generation())
    clock.now += ttl / 2
    assert fresh.get("key") == "value"


def test_a_cached_token_is_looked_up_again_after_auth_cache_seconds(
    make_app, database_url, count_statements, clock
):
    app = make_app(database_url, AUTH_CACHE_SECONDS="30")
    with app.app_context():
        headers = auth_header(issue_token("reader-ttl"))
    client = app.test_client()

    def token_queries():
        with count_statements() as counter:
            assert client.get(LIST, headers=headers).status_code == 200
        return [s for s in counter.statements if "applications" not in s]

    token_queries()
    caches_trusted(app)
    # served from the cache (its first use, recorded, is a change a SQLite worker hears of)
    for _ in range(3):
        if not token_queries():
            break
    assert token_queries() == []
    clock.now += 29
    assert token_queries() == []
    clock.now += 1.5
    assert token_queries() != []  # past the limit: the database is asked again


def test_a_cached_proxy_target_is_read_again_after_app_proxy_cache_seconds(
    make_app, database_url, count_statements, clock, create, reader, upstream
):
    """Nothing changes the application meanwhile: only the time limit can end the entry."""
    app = make_app(database_url, APP_PROXY_CACHE_SECONDS="30", AUTH_CACHE_SECONDS="30")
    proxied = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/"})
    client = app.test_client()
    url = f"/api/v1/app_proxy/{proxied['id']}/x"

    def target_queries():
        with count_statements() as counter:
            assert client.get(url, headers=reader).status_code == 200
        return [s for s in counter.statements if "FROM applications" in str(s)]

    assert target_queries() != []
    caches_trusted(app)
    for _ in range(3):
        if not target_queries():
            break
    assert target_queries() == []
    clock.now += 29
    assert target_queries() == []
    clock.now += 1.5
    assert target_queries() != []


@pytest.mark.parametrize("topic, other", [("auth", "applications"), ("applications", "auth")])
def test_a_notice_of_one_topic_leaves_the_other_topics_cache_warm(tmp_path, topic, other):
    """The triggers' payload names one topic: only that topic's entries are dropped."""
    feed = feed_at(f"sqlite:///{tmp_path / 'feed.db'}")
    before = dict(feed.generations)
    feed._apply(topic)
    assert feed.generations[topic] > before[topic]
    assert feed.generations[other] == before[other]


def test_a_full_cache_never_holds_more_than_its_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(FreshCache, "MAX_ENTRIES", 3)
    feed = feed_at(f"sqlite:///{tmp_path / 'feed.db'}")
    fresh = FreshCache(feed, "auth", ttl=30)
    generation = fresh.generation()
    for key in range(10):
        fresh.put(key, f"value {key}", generation)
        assert len(fresh.entries) <= 3
        assert fresh.get(key) == f"value {key}"  # the newest entry is always kept


def test_a_sqlite_feed_answers_every_thread_of_its_process(tmp_path):
    """Gunicorn's threads share one feed: the probe opened by the first may be used by
    any other, and a commit made elsewhere moves the generation for all of them."""
    path = tmp_path / "feed.db"
    feed = feed_at(f"sqlite:///{path}")
    first = feed.generation("auth")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(feed.generation("auth")))
    thread.start()
    thread.join()
    assert seen == [first]
    with sqlite3.connect(path) as other:  # another connection commits
        other.execute("CREATE TABLE t (x)")
    thread = threading.Thread(target=lambda: seen.append(feed.generation("auth")))
    thread.start()
    thread.join()
    assert seen[1] != first


@contextlib.contextmanager
def a_writer_holding(path):
    """Another connection in the middle of a write to the SQLite file `path` (a sqlite3
    shell's, a long migration's): nobody else reads or writes it meanwhile."""
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        writer.close()


def test_a_sqlite_file_a_writer_holds_delays_a_cached_lookup_by_the_connect_timeout_only(
    tmp_path,
):
    """The probe asks SQLite whether anything changed, which waits for a writer's lock
    like any read: as long as DATABASE_CONNECT_TIMEOUT, as every other connection does,
    then the lookup fails (a 503) rather than hold its request for sqlite3's 5 s."""
    path = tmp_path / "feed.db"
    feed = feed_at(f"sqlite:///{path}", connect_timeout=0.3)
    assert feed.generation("auth") is not None
    with a_writer_holding(path):
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            feed.generation("auth")
        took = time.monotonic() - began
    assert 0.25 < took < 2, took


@pytest.mark.skipif(ON_POSTGRESQL, reason="a SQLite file's lock")
def test_a_request_that_meets_a_sqlite_file_a_writer_holds_is_a_json_503(make_app, database_url):
    app = make_app(database_url, AUTH_CACHE_SECONDS="10", DATABASE_CONNECT_TIMEOUT="0.3")
    with app.app_context():
        headers = auth_header(issue_token("reader-locked-out"))
    client = app.test_client()
    assert client.get(LIST, headers=headers).status_code == 200
    with a_writer_holding(database_url.removeprefix("sqlite:///")):
        answer = client.get(LIST, headers=headers)
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.get_json()["message"] == "The database is unavailable; try again shortly."
    assert answer.headers["Retry-After"] == "1"
    assert client.get(LIST, headers=headers).status_code == 200


# -- PostgreSQL: the change feed's reconnect ---------------------------------------


def listeners(admin):
    return admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = "
        "'applications_api change feed' AND datname = current_database()"
    ).fetchall()


def until(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@postgresql_only
@pytest.mark.parametrize("topic", ["auth", "applications"])
def test_a_change_made_while_the_listener_was_gone_is_not_served_after_it_is_back(
    make_app, database_url, create, upstream, monkeypatch, topic
):
    # Long enough a pause between the listener's attempts for the change to land while
    # nobody listens (its NOTIFY is then lost to this process).
    monkeypatch.setattr(cache_module, "RECONNECT_PAUSE", 1.0)
    app = make_app(database_url, AUTH_CACHE_SECONDS="300", APP_PROXY_CACHE_SECONDS="300")
    feed = app.extensions["applications_api"].token_cache.feed
    with app.app_context():
        headers = auth_header(issue_token("reader-feed"))
    proxied = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/"})
    client = app.test_client()
    url = LIST if topic == "auth" else f"/api/v1/app_proxy/{proxied['id']}/x"
    assert client.get(url, headers=headers).status_code == 200
    caches_trusted(app)
    assert client.get(url, headers=headers).status_code == 200  # cached now
    admin = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
    try:
        assert listeners(admin)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name ="
            " 'applications_api change feed' AND datname = current_database()"
        )
        until(lambda: not feed.listening, "the listener never noticed it was cut")
        if topic == "auth":
            admin.execute("UPDATE users SET is_active = false WHERE username = 'reader-feed'")
        else:
            admin.execute(
                "UPDATE applications SET is_proxy_available = false WHERE id = %s",
                (proxied["id"],),
            )
        until(lambda: feed.listening, "the listener never came back")
        # Nothing restored: the change is still there, and must be what is answered.
        refused = 401 if topic == "auth" else 404
        assert client.get(url, headers=headers).status_code == refused
    finally:
        admin.close()


def feed_records(caplog, thread):
    """What `thread` told the cache's log (other tests' listeners may be logging too)."""
    mine = [r for r in caplog.records if r.name == cache_module.log.name]
    return [(r.levelname, r.getMessage()) for r in mine if r.thread == thread]


def start(feed):
    """Start `feed`'s listener; its thread."""
    before = set(threading.enumerate())
    assert feed.generation("auth") is None  # nothing is trusted before it listens
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "change-feed"]
    return thread


@postgresql_only
def test_the_listener_is_a_daemon_thread_that_logs_when_it_listens_and_when_it_is_cut(
    database_url, monkeypatch, caplog
):
    admin = psycopg.connect(direct_url(database_url), autocommit=True)
    try:
        others = set(listeners(admin))
        feed = feed_at(database_url, database_env(database_url).get("DATABASE_LISTEN_URL"))
        with caplog.at_level(logging.INFO, logger=cache_module.log.name):
            thread = start(feed)
            assert thread.daemon  # a worker's exit never waits for it
            until(lambda: feed.listening, "the listener never listened")
            monkeypatch.setattr(cache_module, "RECONNECT_PAUSE", 3600)  # once cut, it rests
            (mine,) = set(listeners(admin)) - others
            admin.execute("SELECT pg_terminate_backend(%s)", mine)
            until(lambda: not feed.listening, "the listener never noticed it was cut")
            until(lambda: len(feed_records(caplog, thread.ident)) > 1, "no word of the cut")
    finally:
        admin.close()
    listening, cut = feed_records(caplog, thread.ident)
    assert listening == ("INFO", "change feed: listening")
    level, message = cut
    assert level == "WARNING"
    said, _, why = message.partition(", caches off until back: ")
    assert said == "change feed: lost its connection"
    assert "server closed the connection" in why  # what psycopg said
    assert feed.generation("auth") is None


@postgresql_only
def test_a_listener_that_cannot_hear_the_database_says_so_and_trusts_nothing(
    database_url, monkeypatch, caplog
):
    # Listening on another database, it never hears what is sent to this one: as through
    # a transaction pooler, whose LISTEN lands on whichever server connection is free.
    elsewhere = make_url(database_url).set(database="postgres").render_as_string(False)
    feed = feed_at(database_url, listen_url=elsewhere)
    monkeypatch.setattr(cache_module, "RECONNECT_PAUSE", 3600)  # one attempt is enough
    with caplog.at_level(logging.INFO, logger=cache_module.log.name):
        thread = start(feed)
        until(lambda: feed_records(caplog, thread.ident), "no word of the deaf listener")
    assert feed_records(caplog, thread.ident) == [
        (
            "ERROR",
            "change feed: DATABASE_LISTEN_URL: a notification sent through DATABASE_URL did "
            "not arrive within 1 s; the change feed needs a session of its own: PostgreSQL "
            "itself or a session-pooling PgBouncer, not a transaction pooler; caches off",
        )
    ]
    assert feed.generation("auth") is None and not feed.listening


def test_a_database_that_never_answers_delays_start_up_by_the_connect_timeout_only(caplog):
    """A listener's address that takes connections and says nothing (a black-holed
    route, a stopped server behind a load balancer): the check at start-up gives up
    after DATABASE_CONNECT_TIMEOUT and says why, and start-up goes on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # (the kernel completes the handshake; nobody ever answers)
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/applications"
        feed = feed_at(url, connect_timeout=1)
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger=cache_module.log.name):
            feed.check_hearing()
        took = time.monotonic() - began
    assert took < 5, took
    ((level, message),) = feed_records(caplog, threading.get_ident())
    assert level == "WARNING"
    assert message.startswith("change feed: could not check it hears (")
    assert "timeout" in message, message


@postgresql_only
def test_the_listening_connection_finds_out_when_its_peer_vanishes_without_a_word(
    database_url,
):
    """A listener only waits, never sends: when the server or the route to it goes
    away without a FIN or a reset (a failover behind a virtual IP, a dropped NAT entry),
    only TCP keepalives end its wait, and with it the trust in cached answers."""
    feed = feed_at(database_url, database_env(database_url).get("DATABASE_LISTEN_URL"))
    conn = feed._listening()
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            probes = [
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            ]
    finally:
        conn.close()
    # on, the first probe after 5 s of silence, then 2 more 2 s apart: gone within 9 s
    assert probes == [1, 5, 2, 2]
