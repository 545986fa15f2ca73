"""Backends that answer what no HTTP/1.1 message may carry, written from the attacker's
side: the caller gets the proxy's JSON 502, never the bytes, never a server's own error
page, and the proxied exchange gives back its slot (issue: what a hostile peer found)."""

import socket
import threading
import time

import pytest
import requests

from harness.servers import Gunicorn, register_backend
from tests.support.app import SIGNING_KEY, database_env

# Header lines a backend may not send: control bytes in a value, a name that is not a
# token, a bare CR that a lenient parser takes for a line break, an obsolete fold.
FORBIDDEN_LINES = {
    "nul": b"X-Bad: a\x00b",
    "soh": b"X-Bad: a\x01b",
    "vertical tab": b"X-Bad: a\x0bb",
    "del": b"X-Bad: a\x7fb",
    "space in name": b"Bad Name: x",
    "at in name": b"B@d: x",
    "empty name": b": x",
    "bare cr": b"X-Evil: a\rSet-Cookie: injected=1",
    "obs-fold": b"X-Folded: a\r\n b",
}


def raw_answer(*lines, body=b"ok"):
    """An answer written byte for byte: the status line, `lines`, a Content-Length."""

    def answer(handler, record):
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines)
        head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        handler.wfile.write(head + body)
        handler.wfile.flush()
        handler.close_connection = True

    return answer


def raw_status(base_url, method, path, headers):
    """The status of an answer whose head no HTTP client library would parse."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
        return int(sock.recv(64).split(b" ", 2)[1])


def assert_json_502(response):
    assert response.status_code == 502, (response.status_code, response.data[:200])
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json["code"] == 502
    assert "Set-Cookie" not in response.headers
    assert b"injected" not in response.data


@pytest.mark.parametrize("line", FORBIDDEN_LINES.values(), ids=FORBIDDEN_LINES.keys())
@pytest.mark.parametrize("method", ["GET", "POST"])  # (a small POST: nginx's buffered route)
def test_a_header_no_field_may_carry_is_a_json_502(proxy, reader, proxied, upstream, line, method):
    upstream.answer = raw_answer(line)
    response = proxy.client.open(
        f"/api/v1/app_proxy/{proxied['id']}/x", method=method, data=b"body", headers=reader
    )
    assert_json_502(response)


@pytest.mark.parametrize(
    "lines",
    [
        [b"X-Long: " + b"a" * 70_000],  # one line over 64 KiB
        [b"X-Many-%d: 1" % n for n in range(120)],  # more headers than the proxy takes
    ],
    ids=["a header over 64 KiB", "120 headers"],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_answer_too_large_to_pass_on_is_a_502_and_never_sent_again(
    proxy, reader, proxied, upstream, lines, method
):
    upstream.answer = raw_answer(*lines)
    path = f"/api/v1/app_proxy/{proxied['id']}/x"
    if proxy.via == "python":  # past http.client's limits: 100 headers, 64 KiB a line
        assert_json_502(proxy.client.open(path, method=method, headers=reader))
    else:  # within nginx's proxy_buffer_size: passed on as sent
        assert raw_status(proxy.url, method, path, reader) == 200
    assert len(upstream.received) == 1  # not replayed as if the connection had dropped


def test_a_malformed_chunked_answer_is_a_json_502_on_both_transfers(
    request, proxy, reader, proxied, upstream
):
    if proxy.via == "nginx":
        request.applymarker(pytest.mark.xfail(reason="nginx closes without an answer"))

    def bad_chunks(handler, record):
        handler.wfile.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"zz\r\nnot a chunk\r\n"
        )
        handler.wfile.flush()
        handler.close_connection = True

    upstream.answer = bad_chunks
    response = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
    assert_json_502(response)


def test_hostile_answers_leave_every_slot_free_under_gunicorn(
    tmp_path, database_url, staff, upstream
):
    """gunicorn refuses to send a header value with control bytes: before the proxy
    checked answers itself, the refused answer was never closed and its slot never came
    back, so four such answers denied the application for good."""
    env = {
        "PATH": "/usr/bin:/bin",
        **database_env(database_url),
        "APP_PROXY_SIGNING_KEY": SIGNING_KEY,
        "GUNICORN_WORKERS": "1",
    }
    server = Gunicorn(tmp_path, env)
    try:
        app_id = register_backend(server.url, staff, f"{upstream.url}/")
        url = f"{server.url}/api/v1/app_proxy/{app_id}/x"
        upstream.answer = raw_answer(b"X-Bad: a\x01b")
        for _ in range(6):  # more than the application's share of the worker
            refused = requests.get(url, headers=staff, timeout=10)
            assert refused.status_code == 502
            assert refused.headers["Content-Type"] == "application/json"
        upstream.answer = raw_answer(b"X-Good: yes")
        answered = []

        def call():
            answered.append(requests.get(url, headers=staff, timeout=10).status_code)

        callers = [threading.Thread(target=call) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert answered == [200, 200]
    finally:
        server.stop()


def test_gunicorn_answers_its_own_refusals_in_json(tmp_path, database_url):
    env = {"PATH": "/usr/bin:/bin", **database_env(database_url), "GUNICORN_WORKERS": "1"}
    server = Gunicorn(tmp_path, env)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"GET /api/v1/healthcheck/ HTTP/1.1\r\nHost: t\r\n"
                + b"".join(b"X-%d: 1\r\n" % n for n in range(2000))
                + b"\r\n"
            )
            answer = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), head
        assert b"Content-Type: application/json" in head
        assert b'"code": 431' in body
        assert b"<html>" not in answer
    finally:
        server.stop()


@pytest.mark.parametrize("via", ["python"], indirect=True)
def test_an_answer_the_server_refuses_to_send_still_gives_back_its_slot(
    proxy, reader, proxied, upstream
):
    """Whatever makes the server refuse an answer before its body (start_response
    raising), the slot is released though the answer is never closed."""
    from werkzeug.test import EnvironBuilder

    transfer = proxy.app.extensions["applications_api.app_proxy"]
    environ = EnvironBuilder(
        path=f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader
    ).get_environ()

    def refusing(status, headers, exc_info=None):
        raise RuntimeError("the server refuses this answer")

    with pytest.raises(RuntimeError):
        proxy.app.wsgi_app(environ, refusing)
    assert len(upstream.received) == 1
    assert not transfer.bulkhead.active


def test_bytes_after_an_answer_are_never_taken_for_the_next_answer(
    proxy, reader, proxied, upstream
):
    """A backend that writes a second answer behind the first, on a kept-alive
    connection: the next caller gets the backend's answer to its own request."""

    def smuggling(handler, record):
        handler.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
        )
        handler.wfile.flush()

    upstream.answer = smuggling
    path = f"/api/v1/app_proxy/{proxied['id']}/x"
    first = proxy.client.get(path, headers=reader)
    assert (first.status_code, first.data) == (200, b"ok")
    upstream.answer = raw_answer(body=b"second")
    second = proxy.client.get(path, headers=reader)
    assert (second.status_code, second.data) == (200, b"second")
    assert len(upstream.received) == 2


@pytest.mark.parametrize(
    "length",
    [b"abc", b"-1", b"2, 3", b"0x10", b"\xb2"],
    ids=["word", "minus", "two", "hex", "superscript two"],
)
def test_a_content_length_no_answer_may_carry_is_a_json_502(
    proxy, reader, proxied, upstream, length
):
    if proxy.via == "nginx":
        pytest.skip("nginx reads such an answer to the close of its connection")

    def answer(handler, record):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\nok")
        handler.wfile.flush()
        handler.close_connection = True

    upstream.answer = answer
    assert_json_502(proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader))


def test_interim_answers_are_read_past_to_the_final_one(proxy, reader, proxied, upstream):
    if proxy.via == "nginx":
        pytest.skip("nginx's own handling of 1xx from a backend")

    def early_hints(handler, record):
        handler.wfile.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
        )
        handler.wfile.flush()

    upstream.answer = early_hints
    response = proxy.client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader)
    assert (response.status_code, response.data) == (200, b"final")
    assert "Link" not in response.headers
