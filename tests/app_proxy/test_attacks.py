"""app_proxy from the attacker's and the standards' side: the header names are written out
here, never taken from the code's own tables, and every request goes over a real
connection, byte for byte as a hostile caller would send it."""

import itertools
import socket

import pytest

from applications_api.settings import SettingsError, load_settings
from tests.support import headers as withheld

# Connection and Transfer-Encoding frame the raw requests these tests send themselves.
HOP_BY_HOP = [
    name for name in withheld.HOP_BY_HOP if name not in ("Connection", "Transfer-Encoding")
]
SPOOFABLE = withheld.SPOOFABLE


def send_raw(base_url, method, target, header_lines, body=b""):
    """Send a request byte for byte on a new connection; (status, raw reply). A body
    goes with its Content-Length unless header_lines frame it (chunked)."""
    host, port = base_url.removeprefix("http://").split(":")
    head = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if body and not any(line.lower().startswith("transfer-encoding") for line in header_lines):
        head.append(f"Content-Length: {len(body)}")
    request = "\r\n".join([*head, *header_lines, "", ""]).encode() + body
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]), reply


def leaked(upstream, marker):
    """The headers the backend received whose name or value holds `marker`."""
    return [
        (name, value)
        for name, value in upstream.last.header_list
        if marker.lower() in f"{name}: {value}".lower()
    ]


@pytest.mark.parametrize("name", HOP_BY_HOP + SPOOFABLE)
def test_a_callers_header_named_by_the_standards_never_reaches_the_backend(
    proxy, reader, proxied, upstream, name
):
    status, reply = send_raw(
        proxy.url,
        "GET",
        f"/api/v1/app_proxy/{proxied['id']}/x",
        [f"Authorization: {reader['Authorization']}", f"{name}: spoofed-value", "X-Kept: kept"],
    )
    assert status == 200, reply[:300]
    assert upstream.last.headers["X-Kept"] == "kept"  # (the request went through)
    assert leaked(upstream, "spoofed-value") == []


def test_all_of_them_at_once_never_reach_the_backend(proxy, reader, proxied, upstream):
    lines = [f"{name}: spoofed-{index}" for index, name in enumerate(HOP_BY_HOP + SPOOFABLE)]
    status, reply = send_raw(
        proxy.url,
        "GET",
        f"/api/v1/app_proxy/{proxied['id']}/x",
        [f"Authorization: {reader['Authorization']}", *lines],
    )
    assert status == 200, reply[:300]
    assert leaked(upstream, "spoofed-") == []


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_the_callers_cookie_and_token_never_reach_the_backend(
    proxy, reader, proxied, upstream, method
):
    """Sent on the wire (a test client's headers= may drop a Cookie before the app)."""
    token = reader["Authorization"].removeprefix("Token ")
    status, reply = send_raw(
        proxy.url,
        method,
        f"/api/v1/app_proxy/{proxied['id']}/x",
        [
            f"Authorization: {reader['Authorization']}",
            "Cookie: session=cookie-secret; csrftoken=cookie-csrf",
            "Cookie: second=cookie-again",
        ],
        body=b"{}" if method == "POST" else b"",
    )
    assert status == 200, reply[:300]
    assert leaked(upstream, "cookie-") == []
    assert leaked(upstream, token) == []
    assert [name for name, _ in upstream.last.header_list if name.lower() == "cookie"] == []


def test_a_cookie_the_werkzeug_client_really_sends_is_not_forwarded(app, reader, proxied, upstream):
    """The test client's cookie jar (not headers=) puts Cookie in the environ."""
    client = app.test_client()
    client.set_cookie("session", "jar-secret")
    response = client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
    assert response.status_code == 200
    assert leaked(upstream, "jar-secret") == []


# -- the denied-networks check, with names that resolve to several addresses ---------

ALLOWED = "127.0.0.1"  # where the test backend listens (loopback is allowed outside production)
DENIED = ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0"]


def resolving_to(monkeypatch, name, addresses):
    """`name` resolves to `addresses`, in this order, for every lookup of this process."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, int(port), 0, 0) if ":" in address else (address, int(port)),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "addresses",
    [
        list(order)
        for denied in DENIED
        for order in itertools.permutations([ALLOWED, "127.0.0.2", denied])
    ],
    ids=lambda addresses: ",".join(addresses),
)
def test_a_name_with_any_denied_address_is_refused_in_every_order(
    monkeypatch, create, proxy, reader, upstream, addresses
):
    resolving_to(monkeypatch, "mixed.example", addresses)
    app = create(
        is_proxy_available=True, config={"web_url": f"http://mixed.example:{upstream.port}/"}
    )
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/latest", headers=reader)
    assert response.status_code == 502
    assert "denied" in response.json["message"]
    assert upstream.received == []


@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1", "127.8.9.10"])
@pytest.mark.parametrize("first", [True, False])
def test_production_refuses_a_public_name_that_also_resolves_to_loopback(
    monkeypatch, proxy_with, create, reader, upstream, loopback, first
):
    addresses = [loopback, "93.184.215.14"] if first else ["93.184.215.14", loopback]
    resolving_to(monkeypatch, "public.example", addresses)
    production = proxy_with(APP_ENV="production")
    app = create(is_proxy_available=True, config={"web_url": "http://public.example/"})
    response = production.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert "denied" in response.json["message"]


def test_a_name_whose_every_address_is_allowed_is_reached_at_the_first(
    monkeypatch, create, proxy, reader, upstream
):
    resolving_to(monkeypatch, "fine.example", [ALLOWED, "127.0.0.2"])
    app = create(
        is_proxy_available=True, config={"web_url": f"http://fine.example:{upstream.port}/"}
    )
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 200
    assert upstream.last.headers["Host"] == f"fine.example:{upstream.port}"


# -- the signing key in production ----------------------------------------------------


@pytest.mark.parametrize("key", ["", " ", "\t", "\n", "  \r\n ", "\u00a0", "\u2003"])
def test_production_refuses_an_empty_or_blank_signing_key(key):
    with pytest.raises(SettingsError, match="APP_PROXY_SIGNING_KEY"):
        load_settings({"APP_ENV": "production", "APP_PROXY_SIGNING_KEY": key})


@pytest.mark.parametrize("environment", ["production", " Production ", "PRODUCTION"])
def test_production_however_written_needs_a_signing_key(environment):
    with pytest.raises(SettingsError, match="APP_PROXY_SIGNING_KEY"):
        load_settings({"APP_ENV": environment})


def test_production_takes_a_real_signing_key():
    settings = load_settings({"APP_ENV": "production", "APP_PROXY_SIGNING_KEY": "k" * 64})
    assert settings.proxy_signing_key == "k" * 64


# -- replay after a dropped connection -----------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE", "PUT", "PATCH", "POST"])
@pytest.mark.parametrize("size", [1, 64 * 1024, 3 * 1024 * 1024], ids=["1B", "64KiB", "3MiB"])
def test_a_bodied_request_of_any_method_is_never_replayed(
    proxy, reader, proxied, upstream, method, size
):
    """The backend acts on the request, then drops the pooled connection unanswered:
    even an idempotent method is not sent again once it carries a body (read first for
    the signature, or streamed)."""
    warm = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/", headers=reader)
    assert warm.status_code == 200  # (a pooled connection for the next request)
    calls = []

    def act_then_drop(handler, record):
        calls.append((record.method, len(record.body)))
        handler.close_connection = True

    upstream.answer = act_then_drop
    response = proxy.client.open(
        f"/api/v1/app_proxy/{proxied['id']}/x", method=method, data=b"x" * size, headers=reader
    )
    assert response.status_code == 502
    assert calls == [(method, size)]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_bodiless_idempotent_request_is_sent_once_more(proxy, reader, proxied, upstream, method):
    """The other side of the rule: without a body, RFC 9112 §9.3.1 allows one retry."""
    warm = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/", headers=reader)
    assert warm.status_code == 200
    upstream.drop_reused = True
    response = proxy.client.open(
        f"/api/v1/app_proxy/{proxied['id']}/x", method=method, headers=reader
    )
    assert response.status_code == 200
    assert upstream.last.method == method


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "DELETE", "PUT"])
def test_a_chunked_body_of_any_method_is_never_replayed(proxy, reader, proxied, upstream, method):
    """A body without Content-Length (chunked, so streamed unread) counts as a body too."""
    warm = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/", headers=reader)
    assert warm.status_code == 200
    calls = []

    def act_then_drop(handler, record):
        calls.append((record.method, record.body))
        handler.close_connection = True

    upstream.answer = act_then_drop
    status, reply = send_raw(
        proxy.url,
        method,
        f"/api/v1/app_proxy/{proxied['id']}/x",
        [f"Authorization: {reader['Authorization']}", "Transfer-Encoding: chunked"],
        body=b"5\r\norder\r\n0\r\n\r\n",
    )
    assert status == 502, reply[:300]
    assert b"application/json" in reply.partition(b"\r\n\r\n")[0]  # the proxy's own error
    assert calls == [(method, b"order")]


def test_a_refusal_is_logged_with_the_name_and_the_address_it_resolved_to(
    monkeypatch, create, proxy, reader, upstream, caplog
):
    """The operator's only trace of an SSRF attempt: which name, which address."""
    resolving_to(monkeypatch, "mixed.example", [ALLOWED, "169.254.169.254"])
    app = create(
        is_proxy_available=True, config={"web_url": f"http://mixed.example:{upstream.port}/"}
    )
    with caplog.at_level("WARNING", logger="applications_api.app_proxy"):
        response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert "mixed.example resolves to 169.254.169.254" in caplog.text


def test_the_service_s_own_address_is_logged_as_such(proxy_with, create, reader, caplog):
    from harness.servers import free_port

    port = free_port()
    itself = proxy_with(GUNICORN_BIND=f"127.0.0.1:{port}")
    app = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{port}/"})
    with caplog.at_level("WARNING", logger="applications_api.app_proxy"):
        response = itself.client.get(f"/api/v1/app_proxy/{app['id']}/metrics", headers=reader)
    assert response.status_code == 502
    assert f"127.0.0.1:{port} is where this service listens" in caplog.text
