"""The identity signature (RFC 9421), checked the way an extension author checks it: by
the verifiers of docs/app-proxy.md, in Python (the http-message-signatures library) and
in Node (the npm package of that name), at a real backend, for requests sent byte for
byte to the proxy on both transfers."""

import base64
import hashlib
import hmac
import re
import time
from typing import Any

import pytest

from applications_api.app_proxy import keys, signing
from tests.support.app import SIGNING_KEY
from tests.support.backend_verifier import GUIDE, Trusted, hmac_trusted, send_raw, user_at
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
def test_the_target_arrives_as_sent_and_verifies(
    proxy, reader, proxied, upstream, verifiers, sent, received
):
    app_id = proxied["id"]
    assert send_raw(proxy.url, "GET", prefix(app_id) + sent, reader) == 200
    assert upstream.last.path == "/base/" + received
    for verifier in verifiers:
        assert verifier.user(upstream.last, hmac_trusted(app_id), body=b"") is not None


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_verifies(proxy, reader, proxied, upstream, verifiers, method):
    app_id = proxied["id"]
    body = b'{"qty": 1}' if method in ("POST", "PUT", "PATCH") else None
    assert send_raw(proxy.url, method, prefix(app_id) + "orders?tag=1", reader, body) == 200
    arrived = upstream.last
    assert arrived.method == method
    assert arrived.body == (body or b"")
    assert '"content-digest"' in arrived.headers["Signature-Input"]
    for verifier in verifiers:
        assert verifier.user(arrived, hmac_trusted(app_id), body=arrived.body) is not None


def test_a_sized_body_is_covered_and_a_changed_one_fails(
    proxy, reader, proxied, upstream, verifiers
):
    body = b'{"qty": 1}'
    assert send_raw(proxy.url, "POST", prefix(proxied["id"]) + "orders", reader, body) == 200
    arrived = upstream.last
    assert arrived.headers["Content-Digest"].startswith("sha-256=:")
    trusted = hmac_trusted(proxied["id"])
    for verifier in verifiers:
        assert verifier.user(arrived, trusted, body=body) is not None
        assert (
            verifier.user(arrived, trusted, body=b'{"qty": 1000, "refund_to": "attacker"}') is None
        )


def test_bodies_over_the_digest_limit_or_chunked_stream_uncovered(
    proxy_with, create, reader, upstream, verifiers
):
    proxy = proxy_with(APP_PROXY_DIGEST_MAX_BYTES="8")
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})
    trusted = hmac_trusted(app["id"])
    small, large = b"12345678", b"123456789"
    assert send_raw(proxy.url, "POST", prefix(app["id"]) + "up", reader, small) == 200
    assert '"content-digest"' in upstream.last.headers["Signature-Input"]
    for verifier in verifiers:
        assert verifier.user(upstream.last, trusted, body=small) is not None
    for kwargs in ({"body": large}, {"chunks": [b"abc", b"defgh"]}):
        assert send_raw(proxy.url, "POST", prefix(app["id"]) + "up", reader, **kwargs) == 200
        arrived = upstream.last
        assert arrived.body in (large, b"abcdefgh")
        assert '"content-digest"' not in arrived.headers["Signature-Input"]
        assert "Content-Digest" not in arrived.headers
        for verifier in verifiers:  # streamed: vouched for unread, refused when read
            assert verifier.user(arrived, trusted) is not None
            assert verifier.user(arrived, trusted, body=arrived.body) is None


def test_an_empty_body_is_covered(proxy, reader, proxied, upstream, verifiers):
    assert send_raw(proxy.url, "POST", prefix(proxied["id"]) + "x", reader, b"") == 200
    assert '"content-digest"' in upstream.last.headers["Signature-Input"]
    for verifier in verifiers:
        assert verifier.user(upstream.last, hmac_trusted(proxied["id"]), body=b"") is not None
        assert verifier.user(upstream.last, hmac_trusted(proxied["id"]), body=b"smuggled") is None


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


def nonce_of(received):
    found = re.search(r'nonce="([^"]+)"', received.headers["Signature-Input"])
    assert found, received.headers["Signature-Input"]
    return found.group(1)


def test_a_captured_request_verifies_once_with_a_seen_set(
    proxy, reader, proxied, upstream, verifiers
):
    """200 replays of a captured request, verbatim: the first is accepted, the others
    refused by a backend that keeps the guide's seen-set; with another body, refused by
    any backend that reads the body (it is covered on both transfers)."""
    app_id, body = proxied["id"], b'{"qty": 1}'
    assert send_raw(proxy.url, "POST", prefix(app_id) + "orders", reader, body) == 200
    captured = upstream.last
    assert send_raw(proxy.url, "POST", prefix(app_id) + "orders", reader, body) == 200
    nonces = [nonce_of(received) for received in upstream.received]
    assert len(set(nonces)) == 2 and all(len(nonce) == 22 for nonce in nonces)
    trusted = hmac_trusted(app_id)
    for verifier in verifiers:
        seen = f"replays at {proxy.via}"
        verdicts = [verifier.user(captured, trusted, captured.body, seen) for _ in range(200)]
        assert verdicts[0] is not None and verdicts[1:] == [None] * 199
        assert verifier.user(upstream.last, trusted, upstream.last.body, seen) is not None
        assert verifier.user(captured, trusted, b'{"qty": 1000, "refund_to": "attacker"}') is None


SIGNED: dict[str, Any] = dict(method="GET", url="http://127.0.0.1:9/base/orders?a=1", user_id=7)


def first_key(app_id, secret=SIGNING_KEY):
    return signing.signing_key(secret, f"application-{app_id}", signing.HMAC_SHA256)


def signed(url, method="GET", **received):
    """What a backend at `url` receives: Received as the upstream records it."""
    host, _, path = url.removeprefix("http://").partition("/")
    return Received(method, f"/{path}", {**received, "Host": host})


@pytest.mark.parametrize(
    "change",
    [
        {"method": "POST"},
        {"url": "http://127.0.0.1:9/base/other?a=1"},
        {"url": "http://127.0.0.1:9/base/orders?a=2"},
        {"url": "http://127.0.0.1:9/base/orders"},
        {"url": "http://127.0.0.1:9/base/orders?"},
        {"url": "http://127.0.0.2:9/base/orders?a=1"},
        {"user_id": 8},
    ],
)
def test_a_changed_request_fails(verifiers, change):
    headers = signing.identity_headers([first_key(3)], body=b"", **SIGNED)
    changed = {**SIGNED, **change}
    for verifier in verifiers:
        assert verifier.user(signed(SIGNED["url"], **headers), hmac_trusted(3), body=b"") == "7"
        other_secret = hmac_trusted(3, secret="other")
        assert verifier.user(signed(SIGNED["url"], **headers), other_secret, body=b"") is None
        altered = {**headers, signing.USER_HEADER: str(changed["user_id"])}
        received = signed(changed["url"], changed["method"], **altered)
        assert verifier.user(received, hmac_trusted(3), body=b"") is None


def test_an_expired_signature_fails(verifiers):
    url = "http://127.0.0.1:9/base/orders"
    for age, trusted in ((signing.LIFETIME + 60, False), (0, True)):
        headers = signing.identity_headers([first_key(5)], "GET", url, 7, b"", time.time() - age)
        for verifier in verifiers:
            found = verifier.user(signed(url, **headers), hmac_trusted(5), body=b"")
            assert (found is not None) == trusted


def test_a_signature_without_a_nonce_or_expires_fails(verifiers):
    """What an earlier version sent had no nonce: a backend keeping a seen-set could not
    refuse its replays, so the guide's verifiers refuse such a signature."""
    url = "http://127.0.0.1:9/base/orders"
    headers = signing.identity_headers([first_key(5)], "GET", url, 7, b"")
    for cut in (';nonce="[^"]*"', ";expires=[0-9]+"):
        params = re.sub(cut, "", headers["Signature-Input"].partition("=")[2])
        mac = hmac.digest(first_key(5).material, base_of(headers, params).encode(), "sha256")
        forged = {
            **headers,
            "Signature-Input": f"application-5={params}",
            "Signature": f"application-5=:{base64.b64encode(mac).decode()}:",
        }
        for verifier in verifiers:
            assert verifier.user(signed(url, **forged), hmac_trusted(5), body=b"") is None


def base_of(headers, params):
    """The signature base of a GET to /base/orders with an empty body, for `params`."""
    return "\n".join(
        [
            '"@method": GET',
            '"@authority": 127.0.0.1:9',
            '"@path": /base/orders',
            '"@query": ?',
            f'"x-app-proxy-user-id": {headers[signing.USER_HEADER]}',
            f'"content-digest": {headers["Content-Digest"]}',
            f'"@signature-params": {params}',
        ]
    )


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


EXAMPLE_NONCE = "rQ2Fz8c0aRj3rVZ0H1Y9mA"


def test_the_guides_example_is_what_the_service_signs():
    """The worked example, checked with nothing but HMAC: what a JS or Go author does."""
    key = first_key(42, "example-deployment-secret")
    assert key.material.hex() in GUIDE
    headers = signing.identity_headers(
        [key],
        "POST",
        "https://ext.example.com/api/orders?tag=a%2fb",
        7,
        body=b'{"qty": 1}',
        now=1764158400,
        nonce=EXAMPLE_NONCE,
    )
    for name, value in headers.items():
        assert f"\n{name}: {value}\n" in GUIDE
    shown = re.search(r"The signature base.*?```\n(.*?)\n```", GUIDE, re.S)
    assert shown, "docs/app-proxy.md shows no signature base"
    base = shown.group(1)
    params = headers["Signature-Input"].removeprefix("application-42=")
    assert base.endswith(f'"@signature-params": {params}')
    expected = base64.b64encode(hmac.digest(key.material, base.encode(), "sha256")).decode()
    assert headers["Signature"] == f"application-42=:{expected}:"
    digest = base64.b64encode(hashlib.sha256(b'{"qty": 1}').digest()).decode()
    assert headers["Content-Digest"] == f"sha-256=:{digest}:"


def test_two_keys_sign_with_one_nonce_and_each_alone_verifies(verifiers):
    """A rotation's two signatures: labelled with their keyids, the same nonce, and a
    verifier knowing either key accepts (in-process; through the proxy:
    test_key_rotation.py)."""
    url = "http://127.0.0.1:9/base/orders"
    old = first_key(6)
    new = signing.signing_key(SIGNING_KEY, "application-6.v2", signing.ED25519)
    headers = signing.identity_headers([old, new], "GET", url, 7, b"")
    labels = re.findall(r"(?:^|, )([a-z0-9.-]+)=\(", headers["Signature-Input"])
    assert labels == ["application-6", "application-6.v2"]
    assert len(set(re.findall(r'nonce="([^"]+)"', headers["Signature-Input"]))) == 1
    jwks = {"keys": [keys.jwk(new)]}
    for verifier in verifiers:
        assert verifier.user(signed(url, **headers), hmac_trusted(6), body=b"") == "7"
        assert verifier.user(signed(url, **headers), Trusted(jwks=jwks), body=b"") == "7"
        assert verifier.user(signed(url, **headers), hmac_trusted(7), body=b"") is None


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


def test_the_buffered_route_is_nginxs_own(proxy, reader, proxied, upstream, verifiers):
    """The location that sends a body read first answers a caller with a JSON 404, and
    a caller's X-App-Proxy-Buffered does not make a streamed body count as read."""
    assert send_raw(proxy.url, "POST", "/api/v1/app_proxy/_buffered/x", reader, b"{}") == 404
    assert upstream.received == []
    spoofed = {**reader, "X-App-Proxy-Buffered": "1"}
    target = prefix(proxied["id"]) + "up"
    assert send_raw(proxy.url, "POST", target, spoofed, chunks=[b"abc", b"def"]) == 200
    arrived = upstream.last
    assert (
        arrived.body == b"abcdef" and '"content-digest"' not in arrived.headers["Signature-Input"]
    )
    for verifier in verifiers:
        assert verifier.user(arrived, hmac_trusted(proxied["id"])) is not None
