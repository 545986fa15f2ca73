import logging

import pytest
from sqlalchemy import select
from sqlalchemy.exc import InternalError, OperationalError

from applications_api.auth import authentication
from applications_api.auth.models import Token, User
from applications_api.auth.tokens import issue_token, key_digest
from applications_api.database import db
from tests.support.app import auth_header

URL = "/api/v1/applications/"


BODY = {"name": "a", "application_type": "oms"}


class ReadOnly(Exception):
    sqlstate = "25006"  # read_only_sql_transaction: a standby met during a failover


def assert_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert response.json["code"] == 401
    assert response.json["status"] == "Unauthorized"
    assert response.json["message"] == (
        "Missing or invalid token: send 'Authorization: Token <key>'."
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Token"},
        {"Authorization": "Token "},
        {"Authorization": "Token not-a-real-key"},
        {"Authorization": "Bearer not-a-real-key"},
        {"Authorization": "x" * 5000},
    ],
)
def test_missing_or_bad_token_is_401(client, headers):
    assert_401(client.get(URL, headers=headers))
    assert_401(client.post(URL, json=BODY, headers=headers))
    assert_401(client.get(f"{URL}1/", headers=headers))


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "   "}])
def test_a_request_without_a_key_is_refused_without_asking_the_database(
    client, count_statements, headers
):
    """Anyone may send these as fast as they like: they cost no query."""
    with count_statements() as counter:
        assert_401(client.get(URL, headers=headers))
    assert counter.statements == []


def test_a_view_that_asks_for_a_caller_nobody_authenticated_fails_and_says_why(app):
    """Reading the caller in a public endpoint's view is a programming error: loud."""
    with app.test_request_context("/api/v1/healthcheck/"):
        with pytest.raises(RuntimeError) as raised:
            authentication.authenticated_user()
    assert str(raised.value) == "no authenticated user: is this endpoint public?"


def test_token_and_bare_key_forms_are_accepted(app, client):
    with app.app_context():
        key = issue_token("someone")
    assert client.get(URL, headers={"Authorization": f"Token {key}"}).status_code == 200
    assert client.get(URL, headers={"Authorization": f"token {key}"}).status_code == 200
    assert client.get(URL, headers={"Authorization": key}).status_code == 200
    assert client.get(URL, headers={"Authorization": f"Token  {key}"}).status_code == 200
    assert client.get(URL, headers={"Authorization": f" Token {key} "}).status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "Basic", "Tokens", "Digest", "X"])
def test_a_valid_key_under_another_scheme_is_401(app, client, scheme):
    """Only `Token <key>` and the bare key name a key: a real key sent under another
    scheme (as a client configured for another service would) is refused."""
    with app.app_context():
        key = issue_token("someone", staff=True)
    assert_401(client.get(URL, headers={"Authorization": f"{scheme} {key}"}))


def test_deactivated_user_is_401(app, client):
    with app.app_context():
        key = issue_token("leaver", staff=True)
        user = db.session.scalar(select(User).where(User.username == "leaver"))
        assert user is not None
        user.is_active = False
        db.session.commit()
    assert_401(client.get(URL, headers={"Authorization": f"Token {key}"}))


def test_readers_may_read_but_not_write(create, client, reader):
    created = create()
    item = f"{URL}{created['id']}/"
    assert client.get(URL, headers=reader).status_code == 200
    assert client.get(item, headers=reader).status_code == 200
    assert client.head(item, headers=reader).status_code == 200
    assert client.options(item, headers=reader).status_code == 200
    for response in (
        client.post(URL, json=BODY, headers=reader),
        client.put(
            item,
            json={**BODY, "is_active": True, "is_visible": True, "is_proxy_available": True},
            headers=reader,
        ),
        client.patch(item, json={"name": "b"}, headers=reader),
        client.delete(item, headers=reader),
    ):
        assert response.status_code == 403
        assert response.json["code"] == 403
    assert client.get(item, headers=reader).json == created


def test_only_a_digest_of_the_key_is_stored(app):
    with app.app_context():
        key = issue_token("someone")
        stored = db.session.scalars(select(Token.key_digest)).all()
    assert stored == [key_digest(key)]
    assert key not in stored


def test_keys_are_long_and_random(app):
    with app.app_context():
        keys = {issue_token("someone") for _ in range(20)}
    assert len(keys) == 20
    assert all(len(bytes.fromhex(key)) * 8 >= 160 for key in keys)


def test_invalid_tokens_are_never_cached(make_app, database_url, reader):
    """With the cache in use (a valid token is kept), an invalid one is not."""
    from tests.support.app import caches_trusted

    cached_app = make_app(database_url, AUTH_CACHE_SECONDS="60")
    caches_trusted(cached_app)
    cache = cached_app.extensions["applications_api"].token_cache
    client = cached_app.test_client()
    for _ in range(4):  # until the valid token is kept (its first use is a change heard)
        assert client.get(URL, headers=reader).status_code == 200
        if cache.entries:
            break
    kept = dict(cache.entries)
    assert len(kept) == 1
    assert_401(client.get(URL, headers={"Authorization": "Token nope"}))
    assert_401(client.get(URL, headers={"Authorization": "Token nope"}))
    assert cache.entries.keys() == kept.keys()


def test_a_token_used_again_within_a_minute_writes_its_last_use_once(
    make_app, database_url, count_statements
):
    """With the token cache off every request looks the token up; what list-tokens shows
    as its last use is written at most once a minute, not on every request."""
    app = make_app(database_url, AUTH_CACHE_SECONDS="0")
    with app.app_context():
        headers = auth_header(issue_token("often"))
    client = app.test_client()
    with count_statements() as counter:
        for _ in range(3):
            assert client.get("/api/v1/applications/", headers=headers).status_code == 200
    writes = [s for s in counter.statements if str(s).lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1, writes


def test_the_writer_is_the_tokens_own_user(app, client):
    with app.app_context():
        key = issue_token("writer", staff=True)
        user_id = db.session.scalar(select(User.id).where(User.username == "writer"))
    created = client.post(URL, json=BODY, headers=auth_header(key))
    assert created.status_code == 201
    assert created.json["created_by"] == user_id


def test_another_process_within_the_minute_does_not_write_the_last_use_again(
    make_app, database_url, monkeypatch
):
    """The minute is kept by the database too: a process that has not written the last
    use itself (its own memory empty) still leaves a fresh one alone."""
    app = make_app(database_url, AUTH_CACHE_SECONDS="0")
    with app.app_context():
        headers = auth_header(issue_token("shared"))
    client = app.test_client()

    def last_used():
        with app.app_context():
            return db.session.scalar(select(Token.last_used))

    assert client.get(URL, headers=headers).status_code == 200
    first = last_used()
    assert first is not None
    monkeypatch.setattr(authentication, "_touched", {})  # as in another worker
    assert client.get(URL, headers=headers).status_code == 200
    assert last_used() == first


def refuse_the_last_use(monkeypatch, refusal):
    """The database refuses to write a token's last use (and only that) with `refusal`;
    this process has not written it yet, so the next request tries."""
    monkeypatch.setattr(authentication, "_touched", {})
    rows = authentication.database.rows

    def refused(statement, *args, **kwargs):
        if statement is authentication.TOUCH_TOKEN:
            raise refusal
        return rows(statement, *args, **kwargs)

    monkeypatch.setattr(authentication.database, "rows", refused)


@pytest.mark.parametrize(
    "refusal",
    [
        OperationalError("UPDATE tokens", {}, Exception("database is locked")),
        InternalError("UPDATE tokens", {}, ReadOnly()),
    ],
    ids=["a busy SQLite file", "a standby's read-only transaction"],
)
def test_a_last_use_that_cannot_be_written_fails_no_request(
    make_app, database_url, monkeypatch, caplog, refusal
):
    app = make_app(database_url, AUTH_CACHE_SECONDS="0")
    with app.app_context():
        headers = auth_header(issue_token("busy"))
    refuse_the_last_use(monkeypatch, refusal)
    with caplog.at_level(logging.INFO, logger=authentication.log.name):
        assert app.test_client().get(URL, headers=headers).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == authentication.log.name]
    assert said == [f"token last_used not updated: {refusal}"]


def test_another_internal_error_on_the_last_use_is_not_hidden(make_app, database_url, monkeypatch):
    app = make_app(database_url, AUTH_CACHE_SECONDS="0")
    with app.app_context():
        headers = auth_header(issue_token("broken"))
    refuse_the_last_use(monkeypatch, InternalError("UPDATE tokens", {}, Exception("other")))
    answer = app.test_client().get(URL, headers=headers)
    assert answer.status_code == 500
