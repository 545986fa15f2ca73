"""Streaming, timeouts, broken upstreams and pooling, through a real HTTP server."""

import gzip
import os
import socket
import struct
import time

import pytest
import requests
import urllib3

from tests.support.upstream import reset_after, send, send_chunked


def proxy_url(base, app_id, path=""):
    return f"{base}/api/v1/app_proxy/{app_id}/{path}"


def test_chunked_upload_is_streamed_upstream_chunked(proxy, reader, proxied, upstream):
    pieces = [os.urandom(100_000) for _ in range(5)]
    response = requests.post(
        proxy_url(proxy.url, proxied["id"], "upload"),
        data=iter(pieces),
        headers=reader,
        timeout=30,
    )
    assert response.status_code == 200
    assert upstream.last.chunked
    assert "Content-Length" not in upstream.last.headers
    assert upstream.last.body == b"".join(pieces)


def test_sized_upload_keeps_its_content_length(proxy, reader, proxied, upstream):
    body = os.urandom(3 * 1024 * 1024)  # over the API's 1 MiB limit: the proxy has none
    response = requests.put(
        proxy_url(proxy.url, proxied["id"], "file"), data=body, headers=reader, timeout=30
    )
    assert response.status_code == 200
    assert not upstream.last.chunked
    assert upstream.last.headers["Content-Length"] == str(len(body))
    assert upstream.last.body == body


def test_chunked_download_is_streamed_back(proxy, reader, proxied, upstream):
    pieces = [os.urandom(50_000) for _ in range(8)]
    upstream.answer = lambda handler, record: send_chunked(
        handler, 200, pieces, {"Content-Type": "application/octet-stream"}
    )
    with requests.get(
        proxy_url(proxy.url, proxied["id"], "big"), headers=reader, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        assert "Content-Length" not in response.headers
        assert response.raw.read() == b"".join(pieces)


def test_gzip_body_arrives_byte_identical_with_its_headers(proxy, reader, proxied, upstream):
    compressed = gzip.compress(b'{"items": []}' * 1000)
    upstream.answer = lambda handler, record: send(
        handler,
        200,
        compressed,
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    with requests.get(
        proxy_url(proxy.url, proxied["id"], "gz"),
        headers={**reader, "Accept-Encoding": "gzip"},
        stream=True,
        timeout=30,
    ) as response:
        raw = response.raw.read(decode_content=False)
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Length"] == str(len(compressed))
    assert raw == compressed
    assert upstream.last.headers["Accept-Encoding"] == "gzip"


def test_head_keeps_the_upstream_content_length(proxy, reader, proxied, upstream):
    upstream.answer = lambda handler, record: send(handler, 200, b"x" * 1234)
    response = proxy.client.head(f"/api/v1/app_proxy/{proxied['id']}/file", headers=reader)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "1234"
    assert response.data == b""


def test_unreachable_upstream_is_502(create, proxy, reader):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    app = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{port}/"})
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert response.json["code"] == 502
    assert response.json["status"] == "Bad Gateway"


def test_unresolvable_upstream_is_502(create, proxy, reader):
    app = create(is_proxy_available=True, config={"web_url": "http://no-such-host.invalid/"})
    assert proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader).status_code == 502


@pytest.fixture
def impatient(proxy_with):
    return proxy_with(APP_PROXY_READ_TIMEOUT="0.3", APP_PROXY_CONNECT_TIMEOUT="0.3")


def test_slow_upstream_is_504(impatient, reader, proxied, upstream):
    def slow(handler, record):
        time.sleep(1)
        send(handler, 200, b"late")

    upstream.answer = slow
    started = time.monotonic()
    response = impatient.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
    assert response.status_code == 504
    assert response.json["code"] == 504
    assert time.monotonic() - started < 1


def test_upstream_that_never_accepts_is_504(impatient, create, reader):
    # a listening socket whose backlog is full: connects hang until the timeout
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        app = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{port}/"})
        response = impatient.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
        assert response.status_code == 504
    finally:
        for sock in (*fillers, listener):
            sock.close()


def test_reset_mid_body_cuts_the_response_and_the_server_keeps_serving(
    proxy, reader, proxied, upstream, caplog
):
    upstream.answer = lambda handler, record: reset_after(handler)
    with requests.get(
        proxy_url(proxy.url, proxied["id"], "x"), headers=reader, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        with pytest.raises(urllib3.exceptions.ProtocolError):
            response.raw.read()  # fewer bytes than Content-Length promised: an error
    if proxy.via == "python":  # (nginx logs it in its error log)
        assert "upstream body broke off" in caplog.text
    upstream.answer = lambda handler, record: send(handler, 200, b"fine")
    again = requests.get(proxy_url(proxy.url, proxied["id"], "x"), headers=reader, timeout=30)
    assert again.content == b"fine"


def test_reset_before_any_body_is_a_clean_502(proxy, reader, proxied, upstream):
    upstream.answer = lambda handler, record: reset_after(handler, sent=b"", pause=0)
    if proxy.via == "python":
        response = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
        assert response.status_code == 502
        assert response.json["code"] == 502
        return
    # nginx passes the status on as soon as it arrives, before any body: what follows
    # a reset is a cut body, never a falsely complete one
    with requests.get(
        proxy_url(proxy.url, proxied["id"], "x"), headers=reader, stream=True, timeout=30
    ) as response:
        if response.status_code == 200:
            with pytest.raises(urllib3.exceptions.ProtocolError):
                response.raw.read()
        else:  # the reset came before nginx had read the status line
            assert response.status_code == 502
            assert response.json()["code"] == 502


def test_caller_hanging_up_closes_the_upstream_response(proxy, reader, proxied, upstream):
    closed = []

    def endless(handler, record):
        try:
            send_chunked(handler, 200, (b"x" * 65536 for _ in range(100_000)))
        except OSError:
            closed.append(True)  # the proxy let go of this connection

    upstream.answer = endless
    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            f"GET /api/v1/app_proxy/{proxied['id']}/x HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {reader['Authorization']}\r\n\r\n".encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed


def test_connections_to_the_upstream_are_pooled_and_reused(proxy, reader, proxied, upstream):
    for _ in range(10):
        assert proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader).data
    assert upstream.connections == 1  # (https, and names on one address: test_tls.py)


def test_proxy_settings_in_the_environment_divert_nothing(
    proxy, reader, proxied, upstream, monkeypatch
):
    """The backend is called directly, whatever HTTP_PROXY and friends say."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # (nothing listens there)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    response = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
    assert response.status_code == 200
    assert upstream.last.path == "/base/x"


def test_upstream_cookies_are_not_kept_between_callers(proxy, reader, staff, proxied, upstream):
    upstream.answer = lambda handler, record: send(handler, 200, b"", {"Set-Cookie": "sid=1"})
    proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/login", headers=reader)
    proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/other", headers=staff)
    assert "Cookie" not in upstream.last.headers


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_an_unreachable_backend_is_a_json_502_with_a_body_or_without(proxy, reader, create, method):
    """Behind nginx a small body takes another route (read first, then sent on): its
    errors are the same JSON answers."""
    from harness.servers import free_port

    app = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{free_port()}/"})
    response = proxy.client.open(
        f"/api/v1/app_proxy/{app['id']}/x", method=method, data=b"order", headers=reader
    )
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json["code"] == 502
