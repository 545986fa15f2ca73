"""Contract section 4 against a real upstream HTTP server."""

import pytest

from tests.support.backend_verifier import send_raw, user_at
from tests.support.headers import SPOOFABLE
from tests.support.upstream import send


def proxy_url(app_id, path=""):
    return f"/api/v1/app_proxy/{app_id}/{path}"


def test_get_is_forwarded_to_web_url_joined_with_path_and_query(proxy, reader, proxied, upstream):
    response = proxy.client.get(
        proxy_url(proxied["id"], "orders/7?expand=items&x=%2F"), headers=reader
    )
    assert response.status_code == 200
    assert upstream.last.method == "GET"
    assert upstream.last.path == "/base/orders/7?expand=items&x=%2F"
    assert response.json["path"] == "/base/orders/7?expand=items&x=%2F"


def test_empty_path_reaches_the_base(proxy, reader, proxied, upstream):
    assert proxy.client.get(proxy_url(proxied["id"]), headers=reader).status_code == 200
    assert upstream.last.path == "/base/"


def test_web_url_without_trailing_slash_is_still_the_base(create, proxy, reader, upstream):
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base"})
    proxy.client.get(proxy_url(app["id"], "x"), headers=reader)
    assert upstream.last.path == "/base/x"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_forwarded(proxy, reader, proxied, upstream, method):
    response = proxy.client.open(
        proxy_url(proxied["id"], "thing"),
        method=method,
        headers=reader,
        data=b"payload" if method in ("POST", "PUT", "PATCH") else None,
    )
    assert response.status_code == 200
    assert upstream.last.method == method
    if method in ("POST", "PUT", "PATCH"):
        assert upstream.last.body == b"payload"


def test_no_token_is_401_and_nothing_reaches_the_upstream(proxy, proxied, upstream):
    response = proxy.client.get(proxy_url(proxied["id"], "x"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert upstream.received == []


@pytest.mark.parametrize(
    "fields",
    [
        {"is_proxy_available": False},
        {"is_active": False},
        {"config": {"visible_type": "empty"}},
    ],
)
def test_404_unless_active_proxy_available_with_web_url(create, proxy, reader, upstream, fields):
    base = {"is_proxy_available": True, "config": {"web_url": upstream.url}}
    app = create(**{**base, **fields})
    response = proxy.client.get(proxy_url(app["id"], "x"), headers=reader)
    assert response.status_code == 404
    assert response.json["code"] == 404
    assert upstream.received == []


def test_soft_deleted_application_is_404(client, proxy, staff, reader, proxied, upstream):
    client.delete(f"/api/v1/applications/{proxied['id']}/", headers=staff)
    assert proxy.client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 404
    assert upstream.received == []


def test_missing_application_is_404(proxy, reader):
    for app_id in (424242, 10**20):  # (past the largest id too)
        response = proxy.client.get(proxy_url(app_id, "x"), headers=reader)
        assert response.status_code == 404
        assert response.json["code"] == 404
        assert str(app_id) in response.json["message"]


def test_headers_forwarded_and_withheld(proxy, reader, proxied, upstream):
    if proxy.via == "python":  # (the test client sends its jar's Cookie, never headers=')
        proxy.client.set_cookie("session", "secret")
    try:
        proxy.client.get(
            proxy_url(proxied["id"], "x"),
            headers={
                **reader,
                "Cookie": "session=secret",
                "Accept": "application/json",
                "X-Custom": "kept",
                "Connection": "keep-alive, TE",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Upgrade": "websocket",
                "Proxy-Authorization": "Basic xyz",
                "Trailer": "X-Checksum",
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Host": "evil.example",
                "Forwarded": "for=6.6.6.6",
                "X-Real-IP": "6.6.6.6",
                "X-App-Proxy-User-Id": "999",
                "X-App-Proxy-Signature": "forged",
                "Signature-Input": 'app_proxy=("@method");created=1;keyid="application-1"',
                "Signature": "app_proxy=:Zm9yZ2Vk:",
                "Content-Digest": "sha-256=:Zm9yZ2Vk:",
                "X-Request-ID": "req-123",
            },
        )
    finally:
        if proxy.via == "python":
            proxy.client.delete_cookie("session")
    assert "secret" not in str(upstream.last.header_list)
    headers = {name.lower(): value for name, value in upstream.last.headers.items()}
    assert headers["accept"] == "application/json"
    assert headers["x-custom"] == "kept"
    for withheld in (
        "authorization",
        "cookie",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "trailer",
        "forwarded",
        "x-real-ip",
    ):
        assert withheld not in headers, withheld
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    # the host the caller used: the test client's default, or nginx's address
    assert headers["x-forwarded-host"] == (
        "localhost" if proxy.via == "python" else proxy.url.removeprefix("http://")
    )
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-prefix"] == f"/api/v1/app_proxy/{proxied['id']}"
    assert headers["x-request-id"] == "req-123"
    assert "x-app-proxy-signature" not in headers
    assert headers["x-app-proxy-user-id"] != "999"
    assert "Zm9yZ2Vk" not in headers["signature"] + headers["content-digest"]
    assert 'keyid="application-' in headers["signature-input"]


def test_headers_the_callers_connection_names_never_reach_the_backend(
    proxy, reader, proxied, upstream
):
    response = proxy.client.get(
        proxy_url(proxied["id"], "x"),
        headers={**reader, "Connection": "keep-alive, X-Hop", "X-Hop": "hop", "X-Kept": "kept"},
    )
    if proxy.via == "python":  # removed, as RFC 9110 §7.6.1 asks
        assert response.status_code == 200
        assert "X-Hop" not in upstream.last.headers
        assert upstream.last.headers["X-Kept"] == "kept"
    else:  # nginx cannot remove a header by a name the caller chose: refused instead
        assert response.status_code == 400
        assert "x-hop" in response.json["message"]
        assert upstream.received == []


def test_a_malformed_request_id_is_replaced(proxy, reader, proxied, upstream):
    proxy.client.get(proxy_url(proxied["id"], "x"), headers={**reader, "X-Request-ID": "a b\tc"})
    assert len(upstream.last.headers["X-Request-ID"]) == 32


def test_the_identity_verifies(proxy, reader, proxied, upstream, app):
    proxy.client.get(proxy_url(proxied["id"], "orders/7?a=1"), headers=reader)
    assert user_at(upstream.last, proxied["id"], body=b"") == str(user_id_of(app, "viewer"))


def user_id_of(app, username):
    from sqlalchemy import select

    from applications_api.auth.models import User
    from applications_api.database import db

    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def test_upstream_status_headers_and_body_come_back(proxy, reader, proxied, upstream):
    upstream.answer = lambda handler, record: send(
        handler,
        418,
        b"teapot body",
        {
            "Content-Type": "text/plain",
            "X-Upstream": "yes",
            "Set-Cookie": "a=b",
            "Connection": "X-Secret-Hop",
            "X-Secret-Hop": "no",
        },
    )
    response = proxy.client.get(proxy_url(proxied["id"], "x"), headers=reader)
    assert response.status_code == 418
    assert response.data == b"teapot body"
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Length"] == "11"
    assert response.headers["X-Upstream"] == "yes"
    assert response.headers["Set-Cookie"] == "a=b"
    if proxy.via == "python":  # nginx passes what the backend's Connection names
        assert "X-Secret-Hop" not in response.headers


def test_no_content_type_is_invented(proxy, reader, proxied, upstream):
    upstream.answer = lambda handler, record: send(handler, 200, b"raw")
    response = proxy.client.get(proxy_url(proxied["id"], "x"), headers=reader)
    assert "Content-Type" not in response.headers


def test_redirects_are_passed_back_and_rewritten_under_the_proxy(proxy, reader, proxied, upstream):
    answers = iter(
        [
            f"{upstream.url}/base/login?next=%2Fhome",
            "/base/relative/target",
            "https://elsewhere.example/page",
            "/outside/base",
        ]
    )
    upstream.answer = lambda handler, record: send(handler, 302, b"", {"Location": next(answers)})
    app_id = proxied["id"]
    expected = [
        f"/api/v1/app_proxy/{app_id}/login?next=%2Fhome",
        f"/api/v1/app_proxy/{app_id}/relative/target",
        "https://elsewhere.example/page",
        "/outside/base",
    ]
    for location in expected:
        response = proxy.client.get(proxy_url(app_id, "start"), headers=reader)
        assert response.status_code == 302
        assert response.headers["Location"] == location
    assert len(upstream.received) == 4  # never followed


def test_proxy_runs_three_queries_at_most_per_request(
    client, reader, proxied, upstream, count_statements
):
    client.get(proxy_url(proxied["id"], "warm"), headers=reader)  # (records its first key)
    with count_statements() as counter:
        assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
    # token lookup + application lookup + its signing keys, caches off
    assert len(counter.statements) == 3, counter.statements


def test_with_caches_a_proxied_request_runs_no_query(
    make_app, database_url, reader, proxied, upstream, count_statements
):
    from tests.support.app import caches_trusted

    cached = make_app(database_url, AUTH_CACHE_SECONDS="60", APP_PROXY_CACHE_SECONDS="60")
    caches_trusted(cached)
    client = cached.test_client()
    # warming takes up to four calls: recording the token's first use and the
    # application's first key are changes that SQLite's workers hear of
    for _ in range(4):
        with count_statements() as counter:
            assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
        if not counter.statements:
            break
    assert counter.statements == []


def test_a_cached_target_expires(
    make_app, database_url, reader, proxied, upstream, count_statements
):
    """Nothing changes, so only the clock can empty the cache: the application and its
    keys are read again once APP_PROXY_CACHE_SECONDS have passed on it, not before."""
    from tests.support.app import caches_trusted

    cached = make_app(database_url, AUTH_CACHE_SECONDS="60", APP_PROXY_CACHE_SECONDS="60")
    caches_trusted(cached)
    state = cached.extensions["applications_api"]
    now = [1000.0]
    for cache in (state.proxy_targets, state.proxy_keys):
        cache.clock = lambda: now[0]
    client = cached.test_client()
    for _ in range(4):  # warming, as in test_with_caches_a_proxied_request_runs_no_query
        with count_statements() as counter:
            assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
        if not counter.statements:
            break
    now[0] += 59
    with count_statements() as counter:
        assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
    assert counter.statements == []
    now[0] += 2
    with count_statements() as counter:
        assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
    assert len(counter.statements) == 2, counter.statements  # the application, its keys


def test_a_proxied_request_checks_out_one_database_connection(
    app, client, reader, proxied, upstream
):
    from sqlalchemy import event

    from applications_api.database import db

    checkouts = []

    def count(*args):
        checkouts.append(1)

    with app.app_context():
        pool = db.engine.pool
    event.listen(pool, "checkout", count)
    try:
        assert client.get(proxy_url(proxied["id"], "x"), headers=reader).status_code == 200
    finally:
        event.remove(pool, "checkout", count)
    assert len(checkouts) == 1  # the token and application lookups share it


def test_an_invented_method_is_a_json_405(proxy, reader, proxied, upstream):
    response = proxy.client.open(proxy_url(proxied["id"], "x"), method="QAAAA", headers=reader)
    assert response.status_code == 405
    assert response.json["code"] == 405
    assert "GET" in response.headers["Allow"]
    assert upstream.received == []


def test_no_client_identity_or_routing_header_of_the_callers_reaches_the_backend(
    proxy, reader, proxied, upstream
):
    proxy.client.get(
        proxy_url(proxied["id"], "x"), headers={**reader, **{name: "spoofed" for name in SPOOFABLE}}
    )
    received = {name.lower(): value for name, value in upstream.last.headers.items()}
    assert upstream.last.path == "/base/x"  # no X-Original-URL took effect either
    assert [name for name in SPOOFABLE if received.get(name.lower()) == "spoofed"] == []


def test_the_backend_gets_no_header_the_caller_did_not_send(proxy, reader, proxied, upstream):
    """Beyond the ones the proxy adds: no HTTP client's User-Agent or Accept-Encoding."""
    assert send_raw(proxy.url, "GET", proxy_url(proxied["id"], "x"), reader) == 200
    names = {name.lower() for name, _ in upstream.last.header_list}
    assert "user-agent" not in names and "accept-encoding" not in names
    send_raw(
        proxy.url,
        "GET",
        proxy_url(proxied["id"], "x"),
        {**reader, "User-Agent": "front/1.0", "Accept-Encoding": "gzip"},
    )
    assert upstream.last.headers["User-Agent"] == "front/1.0"
    assert upstream.last.headers["Accept-Encoding"] == "gzip"


def test_the_base_needs_no_trailing_slash(proxy, reader, proxied, upstream):
    response = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}?a=1", headers=reader)
    assert response.status_code == 200
    assert upstream.last.path == "/base/?a=1"


def test_every_connection_line_counts(proxy, reader, proxied, upstream):
    """A header named on a second Connection line is hop-by-hop too: never forwarded as
    end-to-end (the embedded transfer drops it; nginx, which cannot, refuses the call)."""
    import socket

    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET /api/v1/app_proxy/{proxied['id']}/x HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {reader['Authorization']}\r\nConnection: keep-alive\r\n"
            "Connection: X-Foo\r\nX-Foo: hop\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    if proxy.via == "python":
        assert status == 200
        assert "X-Foo" not in upstream.last.headers
    else:
        assert status == 400
        assert b"x-foo" in reply.lower()
        assert upstream.received == []
