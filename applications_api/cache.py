"""Per-process caches for the hot paths (verified tokens, proxy targets), dropped as soon
as the database says the rows they copied changed.

Each cache belongs to a topic ("auth": users and tokens; "applications") and keeps an
entry only while its topic's generation is the one it was read in. The ChangeFeed moves
a topic's generation on whenever the database says its tables changed, whoever changed
them (the API, a CLI command, plain SQL, another server):

- PostgreSQL: triggers (migration 0003) NOTIFY `applications_api_changes` with the
  topic; each process keeps one listening connection (DATABASE_LISTEN_URL, a session of
  its own), in a thread. Until it listens and has heard a notification it sent itself
  through DATABASE_URL (starting, or reconnecting after losing its connection, after a
  failover too), nothing cached is trusted.
- SQLite (one machine): before a cached answer is used, `PRAGMA data_version` on a
  connection of this process's own tells whether any other connection committed since.

Entries also expire after `ttl` seconds (AUTH_CACHE_SECONDS, APP_PROXY_CACHE_SECONDS),
and a ttl of 0 turns a cache off.
"""

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from .database import KEEPALIVES
from .settings import libpq_url

log = logging.getLogger(__name__)

CHANNEL = "applications_api_changes"
TOPICS = ("auth", "applications")
RECONNECT_PAUSE = 0.2  # seconds between attempts to listen again
HEARING_SECONDS = 1.0  # how long the listener waits for its own notification


class FeedIsDeaf(Exception):
    """A notification sent through DATABASE_URL did not reach the listener."""


class ChangeFeed:
    """Tells this process when cached rows may have changed (see the module's doc)."""

    # This process's own, set by _start (after gunicorn forks, each worker's): whether
    # the listener hears now; SQLite's probe and the data version it last read.
    listening: bool
    probe: sqlite3.Connection
    data_version: int | None

    def __init__(self, database_url: str, listen_url: str | None, connect_timeout: float) -> None:
        self.on_sqlite = database_url.startswith("sqlite")
        self.database_url = database_url
        self.listen_url = listen_url or database_url
        self.connect_timeout = connect_timeout
        self.generations = dict.fromkeys(TOPICS, 0)
        self.lock = threading.Lock()
        self.pid: int | None = None  # the process the state above is of

    def generation(self, topic: str) -> int | None:
        """The topic's current generation, or None while changes may go unheard."""
        if self.pid != os.getpid():
            self._start()
        if self.on_sqlite:
            self._check_data_version()
        elif not self.listening:
            return None
        return self.generations[topic]

    def changed(self, *topics: str) -> None:
        for topic in topics or TOPICS:
            self.generations[topic] += 1

    def check_hearing(self) -> None:
        """At start-up: raise FeedIsDeaf if the listener cannot hear what is sent through
        DATABASE_URL (a LISTEN through a transaction pooler). A database out of reach
        now is only logged: the listener keeps trying, and trusts no cache meanwhile."""
        if self.on_sqlite:
            return
        try:
            self._listening().close()
        except psycopg.Error as error:
            log.warning("change feed: could not check it hears (%s)", str(error).strip())

    def _start(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()  # after gunicorn forks: this worker's own
            self.listening = False
            self.changed()
            if self.on_sqlite:
                path = make_url(self.database_url).database
                assert path  # (settings refuse an in-memory database, which no probe sees)
                self.probe = sqlite3.connect(
                    path, check_same_thread=False, timeout=self.connect_timeout
                )
                self.data_version = None
            else:
                threading.Thread(target=self._listen, name="change-feed", daemon=True).start()

    def _check_data_version(self) -> None:
        with self.lock:
            version = self.probe.execute("PRAGMA data_version").fetchone()[0]
            if version != self.data_version:
                self.data_version = version
                self.changed()

    def _connect(self, url: str, **arguments: Any) -> psycopg.Connection:
        return psycopg.connect(
            libpq_url(url),
            autocommit=True,
            connect_timeout=max(1, round(self.connect_timeout)),
            **KEEPALIVES,
            **arguments,
        )

    def _listening(self) -> psycopg.Connection:
        """A connection to DATABASE_LISTEN_URL that listens and has proved it hears."""
        conn = self._connect(self.listen_url, application_name="applications_api change feed")
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self._prove_hearing(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prove_hearing(self, conn: psycopg.Connection) -> None:
        """Send a notification of our own the way the triggers' come (DATABASE_URL) and
        wait for it on the listening connection `conn`, applying any other it hears."""
        word = f"heard {secrets.token_hex()}"
        with self._connect(self.database_url) as sender:
            sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, word))
        for notice in conn.notifies(timeout=HEARING_SECONDS):  # (in all, not each)
            if notice.payload == word:
                return
            self._apply(notice.payload)
        with suppress(psycopg.Error):  # (through a pooler, leave no server connection listening)
            conn.execute(f"UNLISTEN {CHANNEL}")
        raise FeedIsDeaf(
            f"a notification sent through DATABASE_URL did not arrive within "
            f"{HEARING_SECONDS:g} s; the change feed needs a session of its own: PostgreSQL "
            "itself or a session-pooling PgBouncer, not a transaction pooler"
        )

    def _apply(self, payload: str) -> None:
        self.changed(*[topic for topic in payload.split(",") if topic in TOPICS])

    def _listen(self) -> None:
        while True:
            try:
                with self._listening() as conn:
                    self.changed()  # whatever happened while nobody listened
                    self.listening = True
                    log.info("change feed: listening")
                    for notice in conn.notifies():
                        self._apply(notice.payload)
            except psycopg.Error as error:
                if self.listening:
                    log.warning(
                        "change feed: lost its connection, caches off until back: %s", error
                    )
            except FeedIsDeaf as error:
                log.error("change feed: DATABASE_LISTEN_URL: %s; caches off", error)
            self.listening = False
            time.sleep(RECONNECT_PAUSE)


class FreshCache:
    MAX_ENTRIES = 10_000

    def __init__(self, feed: ChangeFeed, topic: str, ttl: float) -> None:
        self.feed, self.topic, self.ttl = feed, topic, ttl
        self.entries: dict[Hashable, tuple[Any, int, float]] = {}
        self.clock: Callable[[], float] = time.monotonic  # what entries expire by

    def generation(self) -> int | None:
        """Take this before reading the database; hand it to put() with what was read."""
        return self.feed.generation(self.topic) if self.ttl > 0 else None

    def get(self, key: Hashable) -> Any:
        if self.ttl <= 0:
            return None
        generation = self.feed.generation(self.topic)
        entry = self.entries.get(key)
        if entry and generation is not None and entry[1] == generation and entry[2] > self.clock():
            return entry[0]
        return None

    def put(self, key: Hashable, value: Any, generation: int | None) -> None:
        """Keep `value`, read in `generation`. If a change was heard since, the entry is
        never served: get() serves only entries of the current generation."""
        if generation is None:
            return
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries = {}  # crude but bounded: a full cache starts over
        self.entries[key] = (value, generation, self.clock() + self.ttl)
