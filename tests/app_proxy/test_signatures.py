"""The identity signature (RFC 9421), checked the way an extension author checks it: by
the snippet of docs/app-proxy.md, which verifies with the http-message-signatures
library, at a real backend, for requests sent byte for byte to the proxy on both
transfers."""

import base64
import hashlib
import hmac
import re
import time

import pytest

from applications_api.app_proxy import signing
from tests.support.app import SIGNING_KEY
from tests.support.backend_verifier import GUIDE, send_raw, user_at, verified_user
from tests.support.upstream import Received, Upstream


def prefix(app_id):
    return f"/api/v1/app_proxy/{app_id}/"


# (what the caller sends after the prefix, what the backend receives after /base/)
TARGETS = [
    ("orders/7", "orders/7"),
    ("a%2fb", "a%2fb"),
    ("a%2Fb", "a%2Fb"),
    ("%41dmin", "%41dmin"),
    ("caf%C3%A9", "caf%C3%A9"),
    # (raw UTF-8 bytes: e2e/test_through_nginx.py, as werkzeug's server garbles them)
    ("a;v=1/b,c", "a;v=1/b,c"),
    ("a//b", "a//b"),
    ("x%3Fadmin=1", "x%3Fadmin=1"),
    ("x%23frag?real=2", "x%23frag?real=2"),
    ("x?q={1}", "x?q=%7B1%7D"),
    ('x?q="a"', "x?q=%22a%22"),
    ("x?q=a|b", "x?q=a%7Cb"),
    ("x?q=a^b", "x?q=a%5Eb"),
    ("x?q=%zz", "x?q=%25zz"),
    ("x?q=a+b&r=a%2fb", "x?q=a+b&r=a%2fb"),
    ("x?", "x?"),
    ("x?q=", "x?q="),
]


@pytest.mark.parametrize("sent, received", TARGETS)
def test_the_target_arrives_as_sent_and_verifies(proxy, reader, proxied, upstream, sent, received):
    app_id = proxied["id"]
    assert send_raw(proxy.url, "GET", prefix(app_id) + sent, reader) == 200
    assert upstream.last.path == "/base/" + received
    assert user_at(upstream.last, app_id, body=b"") is not None


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_verifies(proxy, reader, proxied, upstream, method):
    app_id = proxied["id"]
    body = b'{"qty": 1}' if method in ("POST", "PUT", "PATCH") else None
    assert send_raw(proxy.url, method, prefix(app_id) + "orders?tag=1", reader, body) == 200
    arrived = upstream.last
    assert arrived.method == method
    digested = body is None or proxy.via == "python"  # nginx streams bodies unread
    assert user_at(arrived, app_id, body=arrived.body if digested else None) is not None
    covered = arrived.headers["Signature-Input"]
    assert ('"content-digest"' in covered) == digested


def test_a_sized_body_is_covered_and_a_changed_one_fails(proxy_with, create, reader, upstream, via):
    proxy = proxy_with()
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})
    body = b'{"qty": 1}'
    assert send_raw(proxy.url, "POST", prefix(app["id"]) + "orders", reader, body) == 200
    arrived = upstream.last
    if via == "nginx":  # streamed unread: the signature says so, and vouches for no body
        assert '"content-digest"' not in arrived.headers["Signature-Input"]
        assert user_at(arrived, app["id"]) is not None
        assert user_at(arrived, app["id"], body=body) is None
        return
    assert arrived.headers["Content-Digest"].startswith("sha-256=:")
    assert user_at(arrived, app["id"], body=body) is not None
    assert user_at(arrived, app["id"], body=b'{"qty": 1000, "refund_to": "attacker"}') is None


def test_bodies_over_the_digest_limit_or_chunked_stream_uncovered(
    proxy_with, create, reader, upstream
):
    proxy = proxy_with(APP_PROXY_DIGEST_MAX_BYTES="8")
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})
    small, large = b"12345678", b"123456789"
    assert send_raw(proxy.url, "POST", prefix(app["id"]) + "up", reader, small) == 200
    assert ('"content-digest"' in upstream.last.headers["Signature-Input"]) == (
        proxy.via == "python"
    )
    for kwargs in ({"body": large}, {"chunks": [b"abc", b"defgh"]}):
        assert send_raw(proxy.url, "POST", prefix(app["id"]) + "up", reader, **kwargs) == 200
        arrived = upstream.last
        assert arrived.body in (large, b"abcdefgh")
        assert '"content-digest"' not in arrived.headers["Signature-Input"]
        assert "Content-Digest" not in arrived.headers
        assert user_at(arrived, app["id"]) is not None
        assert user_at(arrived, app["id"], body=arrived.body) is None


def test_an_empty_body_is_covered(proxy, reader, proxied, upstream):
    assert send_raw(proxy.url, "POST", prefix(proxied["id"]) + "x", reader, b"") == 200
    assert '"content-digest"' in upstream.last.headers["Signature-Input"]
    assert user_at(upstream.last, proxied["id"], body=b"") is not None
    assert user_at(upstream.last, proxied["id"], body=b"smuggled") is None


def test_a_signature_captured_at_one_application_fails_at_another(
    proxy, reader, proxied, upstream, create
):
    other_backend = Upstream()
    try:
        other = create(is_proxy_available=True, config={"web_url": f"{other_backend.url}/base/"})
        # the same application id's key at another host, and another id's key at the same
        same_host = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})
        body = b'{"qty": 1}'
        assert (
            send_raw(proxy.url, "POST", prefix(proxied["id"]) + "orders?tag=replay1", reader, body)
            == 200
        )
        seen = upstream.last
        assert user_at(seen, proxied["id"]) is not None
        # app 1's backend replays it, byte for byte, at the other applications' backends
        replayed = Received(
            seen.method, seen.path, {**seen.headers, "Host": f"127.0.0.1:{other_backend.port}"}
        )
        assert user_at(replayed, other["id"]) is None
        assert user_at(seen, same_host["id"]) is None
    finally:
        other_backend.close()


SIGNED = dict(method="GET", url="http://127.0.0.1:9/base/orders?a=1", user_id=7)


@pytest.mark.parametrize(
    "change",
    [
        {"method": "POST"},
        {"url": "http://127.0.0.1:9/base/other?a=1"},
        {"url": "http://127.0.0.1:9/base/orders?a=2"},
        {"url": "http://127.0.0.1:9/base/orders"},
        {"url": "http://127.0.0.2:9/base/orders?a=1"},
        {"user_id": 8},
    ],
)
def test_a_changed_request_fails(change):
    headers = signing.identity_headers(SIGNING_KEY, 3, body=b"", **SIGNED)
    key = signing.application_key(SIGNING_KEY, 3)
    assert verified_user("application-3", key, SIGNED["method"], SIGNED["url"], headers) == "7"
    changed = {**SIGNED, **change}
    headers[signing.USER_HEADER] = str(changed["user_id"])
    assert verified_user("application-3", key, changed["method"], changed["url"], headers) is None
    assert (
        verified_user(
            "application-3",
            signing.application_key("other", 3),
            SIGNED["method"],
            SIGNED["url"],
            headers,
        )
        is None
    )


def test_an_expired_signature_fails(proxied, upstream):
    url = f"{upstream.url}/base/orders"
    host = url.split("/")[2]
    for age, trusted in ((signing.LIFETIME + 60, False), (0, True)):
        headers = signing.identity_headers(
            SIGNING_KEY, proxied["id"], "GET", url, 7, body=b"", now=time.time() - age
        )
        received = Received("GET", "/base/orders", {**headers, "Host": host})
        assert (user_at(received, proxied["id"], body=b"") is not None) == trusted


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/app_proxy/0{id}/orders/7",
        "/api/v1/app%5Fproxy/{id}/x%3Fadmin=1",
        "/api/v1/app_proxy/%3{id}/orders",
    ],
)
def test_a_route_not_written_plainly_is_404_and_never_forwarded(
    proxy, reader, proxied, upstream, target
):
    if "%3{id}" in target and proxied["id"] > 9:
        pytest.skip("one digit ids only")
    assert send_raw(proxy.url, "DELETE", target.format(id=proxied["id"]), reader) == 404
    assert upstream.received == []


def test_the_readme_example_is_what_the_service_signs():
    """The worked example, checked with nothing but HMAC: what a JS or Go author does."""
    key = signing.application_key("example-deployment-secret", 42)
    assert key.hex() in GUIDE
    headers = signing.identity_headers(
        "example-deployment-secret",
        42,
        "POST",
        "https://ext.example.com/api/orders?tag=a%2fb",
        7,
        body=b'{"qty": 1}',
        now=1764158400,
    )
    for name, value in headers.items():
        assert f"\n{name}: {value}\n" in GUIDE
    base = re.search(r"The signature base.*?```\n(.*?)\n```", GUIDE, re.S).group(1)
    assert f'"@signature-params": {headers["Signature-Input"].removeprefix("app_proxy=")}' in base
    expected = base64.b64encode(hmac.digest(key, base.encode(), "sha256")).decode()
    assert headers["Signature"] == f"app_proxy=:{expected}:"
    digest = base64.b64encode(hashlib.sha256(b'{"qty": 1}').digest()).decode()
    assert headers["Content-Digest"] == f"sha-256=:{digest}:"


def test_the_operator_prints_an_applications_key(runner, app):
    result = runner.invoke(args=["app-proxy-key", "42"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == signing.application_key(SIGNING_KEY, 42).hex()
    assert runner.invoke(args=["app-proxy-key", "0"]).exit_code != 0


def test_a_server_that_keeps_no_raw_target_is_read_the_same_way(client, reader, proxied, upstream):
    """Without RAW_URI or REQUEST_URI the decoded target is encoded again and checked
    like a raw one: the same 404 for `01`, the same path forwarded."""
    no_raw = {"RAW_URI": "", "REQUEST_URI": ""}
    url = f"/api/v1/app_proxy/{proxied['id']}/orders/7?a=1"
    assert client.get(url, headers=reader, environ_overrides=no_raw).status_code == 200
    assert upstream.last.path == "/base/orders/7?a=1"
    assert user_at(upstream.last, proxied["id"], body=b"") is not None
    zeroed = f"/api/v1/app_proxy/0{proxied['id']}/orders/7"
    assert client.get(zeroed, headers=reader, environ_overrides=no_raw).status_code == 404
    assert len(upstream.received) == 1
