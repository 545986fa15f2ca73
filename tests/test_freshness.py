"""Caches on, and still no stale answer: a change to who may do what, or to where
app_proxy forwards, is honoured on the next request, whoever made it (the API, the CLI,
plain SQL). Here "another worker" is a second app on the same database; the tests with
separate gunicorn servers are in test_freshness_servers.py."""

import time

import pytest
from sqlalchemy import text

from applications_api.auth.tokens import issue_token
from applications_api.database import db
from tests.support.app import auth_header, caches_trusted

WITHIN = 0.1  # seconds from a commit to every worker honouring it
LIST = "/api/v1/applications/"


def honoured(check, within=WITHIN):
    """Poll `check` until it holds; fail if that takes longer than `within` seconds."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "a cached answer outlived its row"
        time.sleep(0.005)


@pytest.fixture
def worker(make_app, database_url):
    """Another worker: an app with both caches on, primed."""
    app = make_app(database_url, AUTH_CACHE_SECONDS="60", APP_PROXY_CACHE_SECONDS="60")
    app.test_client().get("/api/v1/healthcheck/")
    caches_trusted(app)
    return app


def cached(worker, count_statements, url, headers):
    """Ask until the token is served from the cache (no statement but the list's): at
    most three times, as recording the token's first use (last_used) is itself a change
    a SQLite worker hears of."""
    client = worker.test_client()
    first = client.get(url, headers=headers).status_code
    for _ in range(2):
        with count_statements() as counter:
            assert client.get(url, headers=headers).status_code == first
        token_queries = [s for s in counter.statements if "applications" not in s]
        if not token_queries:
            break
    assert token_queries == [], "the token was never served from the cache"
    return first


def sql(app, statement, **params):
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()


def test_a_verified_token_is_served_from_the_cache(worker, app, count_statements):
    with app.app_context():
        headers = auth_header(issue_token("reader-1"))
    assert cached(worker, count_statements, LIST, headers) == 200


def test_revoke_token_on_the_cli_is_honoured_at_once(worker, app, runner, count_statements):
    with app.app_context():
        key = issue_token("leaver")
    headers = auth_header(key)
    cached(worker, count_statements, LIST, headers)
    result = runner.invoke(args=["revoke-token", key[:8]])
    assert result.exit_code == 0, result.output
    client = worker.test_client()
    honoured(lambda: client.get(LIST, headers=headers).status_code == 401)


def test_deactivate_and_activate_user_on_the_cli(worker, app, runner, count_statements):
    with app.app_context():
        headers = auth_header(issue_token("seasonal"))
    client = worker.test_client()
    cached(worker, count_statements, LIST, headers)
    assert runner.invoke(args=["deactivate-user", "seasonal"]).exit_code == 0
    honoured(lambda: client.get(LIST, headers=headers).status_code == 401)
    assert runner.invoke(args=["activate-user", "seasonal"]).exit_code == 0
    honoured(lambda: client.get(LIST, headers=headers).status_code == 200)


def test_set_staff_on_the_cli(worker, app, runner, count_statements):
    with app.app_context():
        headers = auth_header(issue_token("promoted"))
    client = worker.test_client()
    body = {"name": "Staff made", "application_type": "extension"}
    assert client.post(LIST, json=body, headers=headers).status_code == 403
    assert runner.invoke(args=["set-staff", "promoted", "--on"]).exit_code == 0
    honoured(lambda: client.post(LIST, json=body, headers=headers).status_code == 201)
    assert runner.invoke(args=["set-staff", "promoted", "--off"]).exit_code == 0
    honoured(lambda: client.post(LIST, json=body, headers=headers).status_code == 403)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE users SET is_active = false WHERE username = 'viewer'",
        "DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE username = 'viewer')",
    ],
)
def test_plain_sql_on_users_and_tokens_is_honoured_at_once(
    worker, app, reader, statement, count_statements
):
    cached(worker, count_statements, LIST, reader)
    sql(app, statement)
    client = worker.test_client()
    honoured(lambda: client.get(LIST, headers=reader).status_code == 401)


def proxy_status(worker, app_id, headers):
    return worker.test_client().get(f"/api/v1/app_proxy/{app_id}/x", headers=headers).status_code


@pytest.mark.parametrize(
    "change",
    [
        lambda client, url, staff: client.delete(url, headers=staff),
        lambda client, url, staff: client.patch(url, json={"is_active": False}, headers=staff),
        lambda client, url, staff: client.patch(
            url, json={"is_proxy_available": False}, headers=staff
        ),
    ],
)
def test_an_application_changed_through_the_api_is_404_at_once(
    worker, client, staff, reader, proxied, change
):
    assert proxy_status(worker, proxied["id"], reader) == 200
    assert proxy_status(worker, proxied["id"], reader) == 200  # now from the cache
    change(client, f"/api/v1/applications/{proxied['id']}/", staff)
    honoured(lambda: proxy_status(worker, proxied["id"], reader) == 404)


def test_a_changed_web_url_is_followed_at_once(
    worker, app, client, staff, reader, proxied, upstream
):
    assert proxy_status(worker, proxied["id"], reader) == 200
    client.patch(
        f"/api/v1/applications/{proxied['id']}/",
        json={"config": {"web_url": f"{upstream.url}/moved/"}},
        headers=staff,
    )
    honoured(
        lambda: (
            proxy_status(worker, proxied["id"], reader) == 200 and upstream.last.path == "/moved/x"
        )
    )


def test_an_application_deactivated_in_plain_sql_is_404_at_once(worker, app, reader, proxied):
    assert proxy_status(worker, proxied["id"], reader) == 200
    sql(app, "UPDATE applications SET is_proxy_available = false WHERE id = :id", id=proxied["id"])
    honoured(lambda: proxy_status(worker, proxied["id"], reader) == 404)
