"""Behind a real PgBouncer in transaction mode (Debian's, its usual settings): no session
state on request connections, timeouts that hold, a change feed that proves it hears."""

import subprocess
import sys
import threading
import time
from contextlib import ExitStack

import psycopg
import pytest

from applications_api import create_app
from applications_api.settings import SettingsError
from harness.pgbouncer import PgBouncer
from tests.support.app import caches_trusted, direct_url, dispose, make_env, postgresql_only

pytestmark = postgresql_only


@pytest.fixture
def database(database_url, app):
    """The test database's name (migrated by the `app` fixture)."""
    return database_url.rsplit("/", 1)[1]


@pytest.fixture
def bouncer():
    with PgBouncer(pool_size=2) as bouncer:  # (few server connections: sessions switch)
        yield bouncer


@pytest.fixture
def pooled_app(bouncer, database, database_url):
    made = []

    def make(**settings):
        env = make_env(
            bouncer.url(database), DATABASE_LISTEN_URL=direct_url(database_url), **settings
        )
        made.append(create_app(env))
        return made[-1]

    yield make
    for app in made:
        dispose(app)


def test_a_feed_listening_through_the_transaction_pooler_stops_start_up(bouncer, database):
    env = make_env(bouncer.url(database), DATABASE_LISTEN_URL=bouncer.url(database))
    with pytest.raises(SettingsError, match="^DATABASE_LISTEN_URL: .* did not arrive"):
        create_app(env)
    # and through the WSGI entry point, one line an operator reads
    started = subprocess.run(
        [sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True, timeout=30
    )
    assert started.returncode == 1
    assert started.stderr.startswith("configuration error: DATABASE_LISTEN_URL: ")
    assert started.stderr.count("\n") == 1


def test_a_session_pooler_is_a_feed_that_hears(bouncer, database, database_url, staff, create):
    with PgBouncer(pool_mode="session") as session_pooler:
        env = make_env(
            bouncer.url(database),
            DATABASE_LISTEN_URL=session_pooler.url(database),
            AUTH_CACHE_SECONDS="60",
        )
        app = create_app(env)
        try:
            client = app.test_client()
            assert client.get("/api/v1/applications/", headers=staff).status_code == 200
            caches_trusted(app)
            assert client.get("/api/v1/applications/", headers=staff).status_code == 200
            with psycopg.connect(direct_url(database_url), autocommit=True) as admin:
                admin.execute("UPDATE users SET is_active = false")
            deadline = time.monotonic() + 0.1
            while client.get("/api/v1/applications/", headers=staff).status_code != 401:
                assert time.monotonic() < deadline, "a deactivated user still served"
        finally:
            dispose(app)


@pytest.mark.parametrize(
    "pooler",
    ["options refused", "options ignored", "declared"],
)
def test_a_lock_held_past_the_timeout_is_a_503_behind_the_pooler(
    pooler, database_url, database, create, staff
):
    """However the service knows of the pooler (PgBouncer refuses the options startup
    parameter, or ignores it, or DATABASE_POOLER says so), the timeouts still hold."""
    created = create(name="held")
    direct = direct_url(database_url)
    with ExitStack() as stack:
        if pooler == "declared":  # (straight to PostgreSQL: the SET LOCAL timeouts alone)
            url, settings = direct, {"DATABASE_POOLER": "transaction"}
        else:
            ignored = "extra_float_digits" + (",options" if pooler == "options ignored" else "")
            url, settings = stack.enter_context(PgBouncer(ignored=ignored)).url(database), {}
        app = create_app(
            make_env(url, DATABASE_LISTEN_URL=direct, DATABASE_STATEMENT_TIMEOUT="0.5", **settings)
        )
        stack.callback(dispose, app)
        holder = stack.enter_context(psycopg.connect(direct))
        holder.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (created["id"],))
        started = time.monotonic()
        response = app.test_client().patch(
            f"/api/v1/applications/{created['id']}/", json={"name": "changed"}, headers=staff
        )
        waited = time.monotonic() - started
        pooled = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["creator"].pooled  # (what it found)
    assert response.status_code == 503
    assert response.json and "being changed by others" in response.json["message"]
    assert waited < 3
    assert pooled is True


def test_statements_run_many_times_behind_the_pooler(pooled_app, staff):
    """psycopg prepares a statement on the server after its fifth run; behind the
    pooler the next transaction may be on another server connection."""
    app = pooled_app()
    client = app.test_client()
    for n in range(12):
        assert (
            client.post(
                "/api/v1/applications/",
                json={"name": f"a{n}", "application_type": "extension"},
                headers=staff,
            ).status_code
            == 201
        )
        assert client.get("/api/v1/applications/", headers=staff).status_code == 200
    assert len(client.get("/api/v1/applications/?limit=100", headers=staff).json) == 12


def test_concurrent_creates_through_the_pooler_are_all_stored(pooled_app, staff):
    app = pooled_app()
    statuses = []

    def create_some(n):
        client = app.test_client()
        for k in range(5):
            answer = client.post(
                "/api/v1/applications/",
                json={"name": f"c{n}-{k}", "application_type": "extension"},
                headers=staff,
            )
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=create_some, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 40
    listed = app.test_client().get("/api/v1/applications/?limit=100", headers=staff).json
    assert sorted(item["name"] for item in listed) == sorted(
        f"c{n}-{k}" for n in range(8) for k in range(5)
    )
