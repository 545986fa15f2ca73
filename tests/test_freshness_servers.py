"""Separate gunicorn servers (each with two workers and its caches on) on one database:
a change made on one side, through the API, the CLI or plain SQL, is honoured by every
worker of the other within 100 ms of its commit (a signing key retired at once: by the
next request). On SQLite (one machine) the same rules
hold across one server's workers."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from applications_api.app_proxy import signing
from applications_api.auth.tokens import issue_token
from harness.servers import ROOT, Gunicorn, register_backend
from tests.support.app import ON_POSTGRESQL, SIGNING_KEY, make_env, postgresql_only, scalar
from tests.support.backend_verifier import user_at

WITHIN = 0.1
LIST = "/api/v1/applications/"


@pytest.fixture(scope="module")
def servers(database_url, app, tmp_path_factory):
    """Two servers on PostgreSQL; on SQLite one server, asked as if it were two."""
    folder = tmp_path_factory.mktemp("servers")
    env = {
        **os.environ,
        **make_env(database_url, AUTH_CACHE_SECONDS="60", APP_PROXY_CACHE_SECONDS="60"),
        "GUNICORN_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    started = [Gunicorn(folder, env)]
    if ON_POSTGRESQL:
        started.append(Gunicorn(folder, env))
    yield started[0], started[-1], env
    for server in started:
        server.stop()


def status(server, path, headers, method="GET", **kwargs):
    # a new connection each time, so both workers of the server answer in turn
    return requests.request(
        method, server.url + path, headers=headers, timeout=5, **kwargs
    ).status_code


def prime(server, path, headers, expected):
    for _ in range(8):  # both workers cache it
        assert status(server, path, headers) == expected


def honoured(server, path, headers, expected):
    """The server answers `expected` within WITHIN seconds, then on every worker."""
    started = time.monotonic()
    while status(server, path, headers) != expected:
        assert time.monotonic() - started < WITHIN, "a cached answer outlived its row"
    for _ in range(8):
        assert status(server, path, headers) == expected
    return time.monotonic() - started


def flask_command(env, *args):
    subprocess.run(
        [Path(sys.executable).parent / "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def plain_sql(database_url, statement):
    if ON_POSTGRESQL:
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(statement)
    else:
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as lite:
            lite.execute(statement)
        lite.close()  # (sqlite3's with commits; it does not close)


def change(how, env, database_url, command, statement):
    """Make a change through the CLI (`command`) or in plain SQL (`statement`)."""
    if how == "cli":
        flask_command(env, *command)
    else:
        plain_sql(database_url, statement)


@pytest.fixture
def reader_key(app):
    with app.app_context():
        return issue_token("far-reader")


@pytest.mark.parametrize("how", ["cli", "sql"])
def test_a_revoked_token(servers, database_url, reader_key, how):
    one, other, env = servers
    headers = {"Authorization": f"Token {reader_key}"}
    prime(other, LIST, headers, 200)
    change(how, env, database_url, ["revoke-token", reader_key[:8]], "DELETE FROM tokens")
    honoured(other, LIST, headers, 401)


@pytest.mark.parametrize("how", ["cli", "sql"])
def test_a_deactivated_then_reactivated_user(servers, database_url, reader_key, how):
    one, other, env = servers
    headers = {"Authorization": f"Token {reader_key}"}
    prime(other, LIST, headers, 200)
    change(
        how,
        env,
        database_url,
        ["deactivate-user", "far-reader"],
        "UPDATE users SET is_active = false",
    )
    honoured(other, LIST, headers, 401)
    change(
        how, env, database_url, ["activate-user", "far-reader"], "UPDATE users SET is_active = true"
    )
    honoured(other, LIST, headers, 200)


@pytest.mark.parametrize("how", ["cli", "sql"])
def test_a_promoted_then_demoted_user(servers, database_url, reader_key, how):
    one, other, env = servers
    headers = {"Authorization": f"Token {reader_key}"}
    application = {"name": "Far", "application_type": "extension"}
    for _ in range(4):
        assert status(other, LIST, headers, "POST", json=application) == 403
    for flag, value, expected in (("--on", "true", 201), ("--off", "false", 403)):
        change(
            how,
            env,
            database_url,
            ["set-staff", "far-reader", flag],
            f"UPDATE users SET is_staff = {value}",
        )
        started = time.monotonic()
        while status(other, LIST, headers, "POST", json=application) != expected:
            assert time.monotonic() - started < WITHIN


@pytest.mark.parametrize("what", ["soft delete", "deactivate", "proxy off", "web_url"])
@pytest.mark.parametrize("how", ["api", "sql"])
def test_where_app_proxy_forwards(servers, database_url, staff, reader, upstream, how, what):
    one, other, _ = servers
    created = requests.post(
        one.url + LIST,
        headers=staff,
        timeout=5,
        json={
            "name": "Far backend",
            "application_type": "extension",
            "is_proxy_available": True,
            "config": {"web_url": f"{upstream.url}/base/"},
        },
    ).json()
    path = f"/api/v1/app_proxy/{created['id']}/x"
    prime(other, path, reader, 200)
    item = f"{one.url}{LIST}{created['id']}/"
    if how == "api":
        body = {
            "deactivate": {"is_active": False},
            "proxy off": {"is_proxy_available": False},
            "web_url": {"config": {"web_url": f"{upstream.url}/moved/"}},
        }.get(what)
        requests.request(
            "DELETE" if body is None else "PATCH", item, json=body, headers=staff, timeout=5
        ).raise_for_status()
    else:
        column = {
            "soft delete": "is_active = false",
            "deactivate": "is_active = false",
            "proxy off": "is_proxy_available = false",
            "web_url": f"""config = '{{"web_url": "{upstream.url}/moved/"}}'""",
        }[what]
        plain_sql(database_url, f"UPDATE applications SET {column} WHERE id = {created['id']}")
    if what == "web_url":
        started = time.monotonic()
        while status(other, path, reader) != 200 or upstream.last.path != "/moved/x":
            assert time.monotonic() - started < WITHIN
    else:
        honoured(other, path, reader, 404)


@postgresql_only
def test_a_worker_that_lost_its_listener_stops_trusting_its_cache(
    servers, database_url, reader_key
):
    one, other, _ = servers
    headers = {"Authorization": f"Token {reader_key}"}
    prime(other, LIST, headers, 200)
    admin = database_url.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        killed = scalar(
            conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'applications_api change feed' AND datname = "
                "current_database()"
            )
        )
        assert killed >= 2  # the listeners of both servers' workers, at least
        conn.execute("UPDATE users SET is_active = false")  # nobody is listening now
    honoured(other, LIST, headers, 401)
    # and once they are back (asked again and again: no prepared statement, which a
    # transaction pooler would lose)
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        deadline = time.monotonic() + 10
        while (
            scalar(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'applications_api change feed' AND datname = current_database()"
                )
            )
            < killed
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        conn.execute("UPDATE users SET is_active = true")
    honoured(other, LIST, headers, 200)


def test_a_key_rotated_now_stops_signing_at_the_next_request(servers, staff, reader, upstream):
    """`app-proxy-key rotate --now` (a leaked key): the next request to every worker of
    both servers is signed by the next key alone, though their caches were warm."""
    one, other, env = servers
    app_id = register_backend(one.url, staff, f"{upstream.url}/base/", "Rotated")
    path = f"/api/v1/app_proxy/{app_id}/x"
    for server in (one, other):
        prime(server, path, reader, 200)
        assert user_at(upstream.last, app_id, body=b"") is not None
    flask_command(env, "app-proxy-key", "rotate", str(app_id), "--now")
    new_key = signing.derive(SIGNING_KEY, f"application-{app_id}.v2", signing.HMAC_SHA256)
    for server in (one, other):
        for _ in range(8):  # a new connection each: both workers
            assert status(server, path, reader) == 200
            assert user_at(upstream.last, app_id, body=b"") is None
            assert user_at(upstream.last, app_id, body=b"", key=new_key, version=2) is not None
