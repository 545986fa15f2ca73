import time

import psycopg
from sqlalchemy.engine import make_url

from applications_api.database import db
from tests.support.app import own_sessions_only, postgresql_only
from tests.support.tcp_tools import BlackHole, Forwarder

URL = "/api/v1/healthcheck/"


def test_healthcheck_needs_no_token(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_unreachable_database_is_a_fast_503(make_app):
    """A refused connection is answered at once: no retry, no wait for the connect timeout."""
    app = make_app("postgresql://postgres@127.0.0.1:1/nothing", DATABASE_CONNECT_TIMEOUT="30")
    started = time.monotonic()
    response = app.test_client().get(URL)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 2
    assert response.json["code"] == 503


def test_stalled_database_is_a_503_within_the_connect_timeout(make_app):
    hole = BlackHole()
    try:
        app = make_app(
            f"postgresql://postgres@127.0.0.1:{hole.port}/nothing",
            DATABASE_CONNECT_TIMEOUT="1",
        )
        started = time.monotonic()
        response = app.test_client().get(URL)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert response.status_code == 503
    assert elapsed < 10  # bounded by the connect timeout (libpq may try twice), not hung


def test_api_endpoints_answer_503_json_when_the_database_is_down(make_app):
    app = make_app("postgresql://postgres@127.0.0.1:1/nothing")
    response = app.test_client().get("/api/v1/applications/", headers={"Authorization": "Token x"})
    assert response.status_code == 503
    assert response.json["status"] == "Service Unavailable"


@postgresql_only
def test_the_same_process_recovers_when_the_database_returns(make_app, database_url):
    url = make_url(database_url)
    forwarder = Forwarder(url.host or "127.0.0.1", url.port or 5432)
    forwarder.start()
    app = make_app(
        url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False),
        DATABASE_CONNECT_TIMEOUT="1",
    )
    client = app.test_client()
    try:
        assert client.get(URL).status_code == 200
        forwarder.stop()
        assert client.get(URL).status_code == 503
        forwarder.start()
        assert client.get(URL).status_code == 200
        assert client.get(URL).status_code == 200
    finally:
        forwarder.stop()


@postgresql_only
def test_platform_style_postgres_urls_work_as_given(make_app, database_url):
    # hosting platforms hand out postgres://…; the app must connect with it unchanged
    url = make_url(database_url).set(drivername="postgres").render_as_string(hide_password=False)
    assert url.startswith("postgres://")
    app = make_app(url)
    assert app.test_client().get(URL).status_code == 200


@own_sessions_only
@postgresql_only
def test_a_pooled_connection_the_server_closed_is_replaced_unseen(make_app, database_url, reader):
    """No pre-ping: a connection the server ended while it sat in the pool (a restart,
    pg_terminate_backend) is noticed at checkout and replaced, with no failed request."""
    app = make_app(database_url)
    client = app.test_client()
    pids = set()
    for _ in range(3):  # the pool's connections, each used and returned
        with app.app_context(), db.engine.connect() as connection:
            pids.add(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    admin = psycopg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    with admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    for url in (URL, "/api/v1/applications/"):
        response = client.get(url, headers=reader)
        assert response.status_code == 200, response.json
