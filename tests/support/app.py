"""The app as tests build it: settings for a test database, an authorization header, and
waiting for the caches to trust what they hold."""

import os
import time
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from applications_api.database import db

if TYPE_CHECKING:
    import psycopg

DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Behind a transaction pooler the change feed listens straight to PostgreSQL
# (harness/pgbouncer.py).
DATABASE_LISTEN_URL = os.environ.get("DATABASE_LISTEN_URL", "")
BEHIND_A_POOLER = bool(DATABASE_LISTEN_URL)
ON_POSTGRESQL = DATABASE_URL.startswith(("postgres://", "postgresql"))
TABLES = ("signing_keys", "application_changes", "applications", "tokens", "users")
SIGNING_KEY = "test-signing-key"

postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs DATABASE_URL pointing at PostgreSQL"
)
# What the service does when PostgreSQL ends one of its sessions: behind a pooler the
# sessions are the pooler's (it replaces a server connection that died, unseen).
own_sessions_only = pytest.mark.skipif(
    BEHIND_A_POOLER, reason="behind a pooler the server connections are the pooler's"
)


class BufferedClient(FlaskClient):
    """Reads each answer in full and closes it, as a WSGI server does: a proxied answer
    left unread would hold its app_proxy slot. Streaming tests use a real server."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def database_env(database_url):
    """DATABASE_URL, and DATABASE_LISTEN_URL for the same database behind a pooler."""
    env = {"DATABASE_URL": database_url}
    if DATABASE_LISTEN_URL and database_url.startswith("postgres"):
        listen = make_url(DATABASE_LISTEN_URL).set(database=make_url(database_url).database)
        env["DATABASE_LISTEN_URL"] = listen.render_as_string(hide_password=False)
    return env


def direct_url(database_url):
    """PostgreSQL itself, for a test's own connections (libpq's URL)."""
    return (
        database_env(database_url).get("DATABASE_LISTEN_URL", database_url).replace("+psycopg", "")
    )


def make_env(database_url, **overrides):
    # No caches by default: tests see a deactivated user or application refused at once.
    return {
        **database_env(database_url),
        "LOG_LEVEL": "WARNING",
        "AUTH_CACHE_SECONDS": "0",
        "APP_PROXY_CACHE_SECONDS": "0",
        "APP_PROXY_SIGNING_KEY": SIGNING_KEY,
        **overrides,
    }


def scalar(cursor: "psycopg.Cursor[Any]") -> Any:
    """The first value of a query's one row, for a test's own psycopg queries (count(*))."""
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return row[0]


def auth_header(key):
    return {"Authorization": f"Token {key}"}


def empty_tables(app):
    with app.app_context():
        with db.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            else:
                for table in TABLES:
                    connection.execute(text(f"DELETE FROM {table}"))


def dispose(app):
    """Close every pooled connection of `app` (an app a test made and is done with)."""
    with app.app_context():
        db.engine.dispose()


def caches_trusted(app):
    """Wait until the app's caches may be used: on PostgreSQL, once its change feed
    listens (cache.py), which starts with the first cached lookup."""
    cache = app.extensions["applications_api"].token_cache
    deadline = time.monotonic() + 10
    while cache.generation() is None:
        assert time.monotonic() < deadline, "the change feed never started listening"
        time.sleep(0.01)


Flask.test_client_class = BufferedClient
