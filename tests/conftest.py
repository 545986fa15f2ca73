"""Fixtures: the real app on a real database (SQLite by default, PostgreSQL when
DATABASE_URL says so), migrated with Alembic once, and emptied after each test that
used it. A test that asks for no database (directly or through another fixture) gets
none: nothing is migrated or emptied for it."""

import flask_migrate
import pytest

from applications_api import create_app
from applications_api.auth.tokens import issue_token
from tests.support.app import (
    DATABASE_URL,
    ON_POSTGRESQL,
    auth_header,
    dispose,
    empty_tables,
    make_env,
)


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
    yield app
    dispose(app)


@pytest.fixture(autouse=True)
def _empty_tables_after(request):
    """After a test that used the database: its rows go, the schema stays."""
    if "database_url" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    yield
    empty_tables(app)


@pytest.fixture(autouse=True)
def _memoized_anew():
    """Each test builds the secret-key matcher and the signing keys anew, so it runs
    fold(), derive() and the rest itself rather than reading an earlier test's results
    (a mutation run maps each function to the tests that call it: scripts/mutation.sh)."""
    from applications_api.app_proxy import signing
    from applications_api.applications import secrets

    for memoized in (secrets._matcher, signing.signing_key, signing._timed_params):
        memoized.cache_clear()


@pytest.fixture
def make_app():
    """Build another app (`make_app(database_url, SETTING="value", ...)`); its engine
    is disposed after the test."""
    made = []

    def make(database_url, **settings):
        made.append(create_app(make_env(database_url, **settings)))
        return made[-1]

    yield make
    for app in made:
        dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


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
def count_statements():
    """Context manager recording the SQL statements requests send inside it, whichever
    app sends them: every one goes through database._execute."""
    from applications_api import database

    class Counter:
        def __enter__(self):
            self.statements: list[str] = []
            self.send = send = database._execute

            def recording(sql, *args, **kwargs):
                self.statements.append(sql)
                return send(sql, *args, **kwargs)

            database._execute = recording
            return self

        def __exit__(self, *exc):
            database._execute = self.send

    return Counter


@pytest.fixture
def upstream():
    """A real backend on 127.0.0.1 recording what it receives."""
    from tests.support.upstream import Upstream

    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxied(create, upstream):
    """An active, proxy-available application whose web_url is the upstream + /base/."""
    return create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})
