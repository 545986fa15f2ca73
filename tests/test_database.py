"""database.py's door: statements sent to the driver keep SQLAlchemy's types and errors."""

import os
import threading
from datetime import UTC, datetime

import psycopg
import pytest
import requests
from sqlalchemy import event, insert, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from applications_api import database
from applications_api.applications.service import APPLICATION_BY_ID
from applications_api.auth.models import User
from tests.support.app import own_sessions_only, postgresql_only
from tests.support.live_server import LiveServer


def test_rows_come_back_with_the_columns_types(app, create):
    created = create(config={"web_url": "https://a.example/"}, is_visible=True)
    with app.app_context():
        row = database.first(APPLICATION_BY_ID, {"app_id": created["id"]})
    assert row is not None
    assert row["config"] == {"web_url": "https://a.example/", "visible_type": "empty"}
    assert row["is_visible"] is True
    assert isinstance(row["created_date"], datetime)
    assert row["created_date"].tzinfo is not None
    assert row["created_date"].astimezone(UTC).isoformat() == created["created_date"]


def test_a_missing_parameter_is_an_error_not_a_null(app):
    with app.app_context(), pytest.raises(KeyError):
        database.first(APPLICATION_BY_ID, {})


def test_a_driver_error_is_sqlalchemys(app):
    duplicate = insert(User).values(username="twice", is_staff=False, is_active=True)
    now = {"created_date": datetime.now(UTC)}
    with app.app_context():
        database.rows(duplicate.values(now))
        with pytest.raises(IntegrityError):
            database.rows(duplicate.values(now))
        database.release()


def test_statements_it_cannot_send_as_compiled_are_refused(app):
    with app.app_context(), pytest.raises(ValueError, match="Python-side column defaults"):
        database.rows(insert(User).values(username="defaults"))
    with app.app_context(), pytest.raises(ValueError, match="rendered per execution"):
        database.rows(select(User.id).where(User.username.in_(["a", "b"])))


@own_sessions_only
@postgresql_only
@pytest.mark.parametrize("in_a_write", [False, True], ids=["read", "write's BEGIN"])
def test_a_connection_lost_mid_request_is_a_503_error_and_the_next_statement_reconnects(
    app, database_url, in_a_write
):
    pid = select(database.db.func.pg_backend_pid().label("pid"))
    admin_url = make_url(database_url).set(drivername="postgresql")
    with app.app_context():
        first = database.first(pid)  # checked out, held by this "request"
        assert first is not None
        first_pid = first["pid"]
        with psycopg.connect(
            admin_url.render_as_string(hide_password=False), autocommit=True
        ) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (first_pid,))
        with pytest.raises(OperationalError) as lost:
            if in_a_write:  # (the BEGIN, sent on its own, is what finds it lost)
                with database.transaction():
                    database.first(pid)
            else:
                database.first(pid)
        assert lost.value.connection_invalidated
        again = database.first(pid)
        assert again is not None and again["pid"] != first_pid
        database.release()


@pytest.fixture
def read_only_url(database_url):
    """The test database as a role of its own whose transactions there are read-only,
    as on a standby; the role is dropped after."""
    admin = make_url(database_url).set(drivername="postgresql")
    admin_url = admin.render_as_string(hide_password=False)
    role = f"applications_read_only_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        conn.execute(
            f'ALTER ROLE "{role}" IN DATABASE "{admin.database}" '
            "SET default_transaction_read_only = on"
        )
    yield admin.set(username=role).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(f'DROP ROLE "{role}"')


@postgresql_only
@own_sessions_only  # (the pooler knows the service's role alone)
def test_a_write_refused_by_a_read_only_transaction_is_a_503(read_only_url, make_app, staff):
    """What a connection that landed on a standby answers a write: the database is
    unavailable for now, a JSON 503, not the service's 500. Reads go on."""
    client = make_app(read_only_url).test_client()
    # First a read, with a token this process has not yet seen: recording the token's
    # last use is a write the standby refuses, and must not cost the read its answer.
    assert client.get("/api/v1/applications/", headers=staff).status_code == 200
    body = {"name": "Shop front", "application_type": "extension"}
    refused = client.post("/api/v1/applications/", json=body, headers=staff)
    assert refused.status_code == 503, refused.json
    assert refused.json["message"] == "The database is unavailable; try again shortly."
    assert refused.headers["Retry-After"]


def test_a_write_whose_last_statement_fails_leaves_nothing_written(app):
    """The last statement of a transaction carries its COMMIT (on PostgreSQL in one
    round trip); when it fails, nothing of the transaction stays."""
    now = datetime.now(UTC)
    user = {"is_staff": False, "is_active": True, "created_date": now}
    named = select(User.id).where(or_(User.username == "first", User.username == "second"))
    with app.app_context():
        with pytest.raises(IntegrityError), database.transaction():
            database.rows(insert(User).values(username="first", **user))
            database.rows(insert(User).values(username="first", **user), last=True)
        assert database.rows(named) == []
        with database.transaction():
            database.rows(insert(User).values(username="second", **user), last=True)
        assert len(database.rows(named)) == 1
        database.release()


def test_each_thread_serving_requests_keeps_a_connection(make_app, database_url, create, staff):
    """The pool keeps GUNICORN_THREADS connections: waves of that many requests at once
    reuse them, where a smaller pool opened (and closed) new ones at every wave."""
    threads = 8
    for n in range(100):  # (a page of 100 to answer: each request holds its connection)
        create(name=f"app {n}")
    app = make_app(database_url, GUNICORN_THREADS=str(threads))
    with app.app_context():
        engine = database.db.engine
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))

    def wave(url):
        barrier = threading.Barrier(threads)

        def get():
            barrier.wait()
            requests.get(f"{url}/api/v1/applications/?limit=100", headers=staff, timeout=30)

        started = [threading.Thread(target=get) for _ in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()

    with LiveServer(app) as server:
        for _ in range(10):
            wave(server.url)
    assert 0 < len(opened) <= threads
