"""Per-process caches for the hot paths (verified tokens, proxy targets) that never
outlive the rows they copied.

Each cache belongs to a topic ("auth": users and tokens; "applications") and keeps an
entry only while its topic's generation is the one it was read in. The ChangeFeed moves
a topic's generation on whenever the database says its tables changed, whoever changed
them (the API, a CLI command, plain SQL, another server):

- PostgreSQL: triggers (migration 0003) NOTIFY `applications_api_changes` with the
  topic; each process keeps one listening connection, in a thread. Until it listens
  (starting, or reconnecting after losing its connection), nothing cached is trusted.
- SQLite (one machine): before a cached answer is used, `PRAGMA data_version` on a
  connection of this process's own tells whether any other connection committed since.

Entries also expire after `ttl` seconds (AUTH_CACHE_SECONDS, APP_PROXY_CACHE_SECONDS),
and a ttl of 0 turns a cache off.
"""

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Hashable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "applications_api_changes"
TOPICS = ("auth", "applications")
RECONNECT_PAUSE = 0.2  # seconds between attempts to listen again


class ChangeFeed:
    """Tells this process when cached rows may have changed (see the module's doc)."""

    def __init__(self, database_url: str, connect_timeout: float = 3.0) -> None:
        url = make_url(database_url)
        self.dialect = url.get_backend_name()
        self.url = url
        self.connect_timeout = connect_timeout
        self.generations = dict.fromkeys(TOPICS, 0)
        self.listening = False
        self.lock = threading.Lock()
        self.pid: int | None = None  # the process that started the listener or opened the probe
        self.probe: sqlite3.Connection | None = None
        self.data_version: int | None = None

    def generation(self, topic: str) -> int | None:
        """The topic's current generation, or None while changes may go unheard."""
        if self.pid != os.getpid():
            self._start()
        if self.dialect == "sqlite":
            self._check_data_version()
        elif not self.listening:
            return None
        return self.generations[topic]

    def changed(self, *topics: str) -> None:
        for topic in topics or TOPICS:
            self.generations[topic] += 1

    def _start(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()  # after gunicorn forks: this worker's own
            self.listening = False
            self.changed()
            if self.dialect == "sqlite":
                self.probe = sqlite3.connect(
                    self.url.database or ":memory:",
                    check_same_thread=False,
                    timeout=self.connect_timeout,
                )
                self.data_version = None
            else:
                threading.Thread(target=self._listen, name="change-feed", daemon=True).start()

    def _check_data_version(self) -> None:
        with self.lock:
            assert self.probe is not None  # (opened by _start, which generation() calls first)
            version = self.probe.execute("PRAGMA data_version").fetchone()[0]
            if version != self.data_version:
                self.data_version = version
                self.changed()

    def _listen(self) -> None:
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                with psycopg.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self.connect_timeout)),
                    application_name="applications_api change feed",
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=2,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.changed()  # whatever happened while nobody listened
                    self.listening = True
                    log.info("change feed: listening")
                    for notice in conn.notifies():
                        self.changed(*[t for t in notice.payload.split(",") if t in TOPICS])
            except psycopg.Error as error:
                if self.listening:
                    log.warning(
                        "change feed: lost its connection, caches off until back: %s", error
                    )
            self.listening = False
            time.sleep(RECONNECT_PAUSE)


class FreshCache:
    MAX_ENTRIES = 10_000

    def __init__(self, feed: ChangeFeed, topic: str, ttl: float) -> None:
        self.feed, self.topic, self.ttl = feed, topic, ttl
        self.entries: dict[Hashable, tuple[Any, int, float]] = {}

    def generation(self) -> int | None:
        """Take this before reading the database; hand it to put() with what was read."""
        return self.feed.generation(self.topic) if self.ttl > 0 else None

    def get(self, key: Hashable) -> Any:
        if self.ttl <= 0:
            return None
        generation = self.feed.generation(self.topic)
        entry = self.entries.get(key)
        if (
            entry
            and generation is not None
            and entry[1] == generation
            and entry[2] > time.monotonic()
        ):
            return entry[0]
        return None

    def put(self, key: Hashable, value: Any, generation: int | None) -> None:
        """Keep `value`, read in `generation`. If a change was heard since, the entry is
        never served: get() serves only entries of the current generation."""
        if generation is None:
            return
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries = {}  # crude but bounded: a full cache starts over
        self.entries[key] = (value, generation, time.monotonic() + self.ttl)
