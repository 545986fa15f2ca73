"""Fixtures: the real app on a real database (SQLite by default, PostgreSQL when
DATABASE_URL says so), migrated with Alembic, emptied between tests."""

import os
import time

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text

from applications_api import create_app
from applications_api.auth.tokens import issue_token
from applications_api.database import db

DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRESQL = DATABASE_URL.startswith(("postgres://", "postgresql"))
TABLES = ("application_changes", "applications", "tokens", "users")
SIGNING_KEY = "test-signing-key"

postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs DATABASE_URL pointing at PostgreSQL"
)


class BufferedClient(FlaskClient):
    """Reads each answer in full and closes it, as a WSGI server does: a proxied answer
    left unread would hold its app_proxy slot. Streaming tests use a real server."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Flask.test_client_class = BufferedClient


def make_env(database_url, **overrides):
    # No caches by default: tests see a deactivated user or application refused at once.
    return {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "AUTH_CACHE_SECONDS": "0",
        "APP_PROXY_CACHE_SECONDS": "0",
        "APP_PROXY_SIGNING_KEY": SIGNING_KEY,
        **overrides,
    }


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if ON_POSTGRESQL:
        return DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'applications.db'}"


@pytest.fixture(scope="session")
def app(database_url):
    app = create_app(make_env(database_url))
    app.config["TESTING"] = True
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.fixture(autouse=True)
def empty_tables(app):
    yield
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                db.session.execute(text(f"DELETE FROM {table}"))
        db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def auth_header(key):
    return {"Authorization": f"Token {key}"}


@pytest.fixture
def staff(app):
    """Authorization header of a staff user."""
    with app.app_context():
        return auth_header(issue_token("operator", staff=True))


@pytest.fixture
def reader(app):
    """Authorization header of a user who is not staff."""
    with app.app_context():
        return auth_header(issue_token("viewer"))


@pytest.fixture
def create(client, staff):
    """POST an application (defaults filled in) and return the created JSON."""

    def create(**fields):
        body = {"name": "Shop front", "application_type": "extension", **fields}
        response = client.post("/api/v1/applications/", json=body, headers=staff)
        assert response.status_code == 201, response.json
        return response.json

    return create


@pytest.fixture
def count_statements(app):
    """Context manager counting the SQL statements run inside it (on `app`'s engine,
    or another app's: `count_statements(other_app)`)."""

    class Counter:
        def __init__(self, target=None):
            self.statements = []
            with (target or app).app_context():
                self.engine = db.engine

        def __call__(self, conn, cursor, statement, *args):
            self.statements.append(statement)

        def __enter__(self):
            event.listen(self.engine, "before_cursor_execute", self)
            return self

        def __exit__(self, *exc):
            event.remove(self.engine, "before_cursor_execute", self)

    return Counter


@pytest.fixture
def upstream():
    """A real backend on 127.0.0.1 recording what it receives."""
    from tests.upstream import Upstream

    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxied(create, upstream):
    """An active, proxy-available application whose web_url is the upstream + /base/."""
    return create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})


def caches_trusted(app):
    """Wait until the app's caches may be used: on PostgreSQL, once its change feed
    listens (cache.py), which starts with the first cached lookup."""
    cache = app.extensions["applications_api"].token_cache
    deadline = time.monotonic() + 10
    while cache.generation() is None:
        assert time.monotonic() < deadline, "the change feed never started listening"
        time.sleep(0.01)
