"""A slow caller or backend costs the proxy a bounded share, never the registry
(issue: app_proxy can never starve the registry)."""

import socket
import threading
import time

import pytest
import requests
import urllib3

from applications_api.app_proxy import in_flight
from tests.support.upstream import send, send_chunked

python_only = pytest.mark.parametrize("via", ["python"], indirect=True)


def proxy_url(base, app_id, path="x"):
    return f"{base}/api/v1/app_proxy/{app_id}/{path}"


def dribble(handler, record, count=6, pause=1.0):
    handler.send_response(200)
    handler.send_header("Content-Length", str(count))
    handler.end_headers()
    for _ in range(count):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(pause)


def test_a_dribbling_backend_reaches_the_caller_as_it_sends(proxy, reader, proxied, upstream):
    upstream.answer = dribble
    started = time.monotonic()
    with requests.get(
        proxy_url(proxy.url, proxied["id"]), headers=reader, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        first = response.raw.read(1)
        first_after = time.monotonic() - started
        second = response.raw.read(1)
        second_after = time.monotonic() - started
    print(
        f"{proxy.via}: bytes 1 and 2 of 6 (one a second) after {first_after:.2f} s "
        f"and {second_after:.2f} s"
    )
    assert first + second == b"xx"
    assert first_after < 1.5
    assert second_after < 2.5


def test_a_dropped_pooled_connection_is_retried_once_for_a_get_never_for_a_post(
    proxy, reader, proxied, upstream
):
    upstream.drop_reused = True
    statuses = [
        proxy.client.get(proxy_url("", proxied["id"]), headers=reader).status_code
        for _ in range(10)
    ]
    assert statuses == [200] * 10
    posts_before = sum(r.method == "POST" for r in upstream.received)
    response = proxy.client.post(proxy_url("", proxied["id"]), data=b"order", headers=reader)
    # on a pooled connection the backend then dropped (both transfers pool): never sent again
    assert response.status_code == 502
    assert sum(r.method == "POST" for r in upstream.received) == posts_before


@python_only
def test_the_bulkhead_answers_503_at_once_and_the_api_keeps_answering(
    proxy_with, create, staff, reader, upstream
):
    bounded = proxy_with(
        APP_PROXY_MAX_IN_FLIGHT="2",
        APP_PROXY_MAX_IN_FLIGHT_PER_APP="1",
        APP_PROXY_MAX_IN_FLIGHT_PER_CALLER="2",
    )
    busy = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/busy/"})
    other = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/other/"})
    release = threading.Event()

    def hold(handler, record):
        if record.path.startswith("/busy/"):
            release.wait(10)
        send(handler, 200, b"done")

    upstream.answer = hold
    holder = threading.Thread(
        target=requests.get,
        args=(proxy_url(bounded.url, busy["id"]),),
        kwargs={"headers": reader, "timeout": 30},
    )
    holder.start()
    try:
        deadline = time.monotonic() + 5
        while not upstream.received and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        refused = requests.get(proxy_url(bounded.url, busy["id"]), headers=reader, timeout=5)
        assert time.monotonic() - started < 1
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["code"] == 503
        assert "this application's share" in refused.json()["message"]
        assert (
            requests.get(proxy_url(bounded.url, other["id"]), headers=reader, timeout=5).status_code
            == 200
        )
        listed = requests.get(f"{bounded.url}/api/v1/applications/", headers=staff, timeout=5)
        assert listed.status_code == 200
    finally:
        release.set()
        holder.join(10)
    # the slot comes back once the server closed the answer, a moment after the caller
    # had it all
    for _ in range(20):
        again = requests.get(proxy_url(bounded.url, busy["id"]), headers=reader, timeout=5)
        if again.status_code == 200:
            break
        time.sleep(0.05)
    assert again.status_code == 200


@python_only
def test_a_trickling_download_is_cut_below_the_minimum_rate(
    proxy_with, monkeypatch, reader, proxied, upstream
):
    monkeypatch.setattr(in_flight, "RATE_GRACE", 0.5)
    strict = proxy_with(APP_PROXY_MIN_RATE="100")
    upstream.answer = lambda handler, record: dribble(handler, record, count=100, pause=0.1)
    started = time.monotonic()
    with requests.get(
        proxy_url(strict.url, proxied["id"]), headers=reader, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        with pytest.raises(urllib3.exceptions.ProtocolError):
            response.raw.read()  # cut short: an incomplete body, never a complete one
    assert time.monotonic() - started < 4


@python_only
def test_a_transfer_is_cut_at_its_deadline(proxy_with, reader, proxied, upstream):
    strict = proxy_with(APP_PROXY_DEADLINE="1")

    def endless(handler, record):
        def chunks():
            for _ in range(1000):
                time.sleep(0.02)
                yield b"x" * 1024

        try:
            send_chunked(handler, 200, chunks())
        except OSError:
            pass

    upstream.answer = endless
    started = time.monotonic()
    with requests.get(
        proxy_url(strict.url, proxied["id"]), headers=reader, stream=True, timeout=30
    ) as response:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for _ in response.iter_content(65536):
                pass
    assert 1 <= time.monotonic() - started < 4


@python_only
def test_a_slow_upload_is_cut_and_frees_its_slot(
    proxy_with, monkeypatch, reader, proxied, upstream
):
    monkeypatch.setattr(in_flight, "RATE_GRACE", 0.5)
    strict = proxy_with(APP_PROXY_MIN_RATE="100", APP_PROXY_MAX_IN_FLIGHT="1")
    host, port = strict.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /api/v1/app_proxy/{proxied['id']}/up HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {reader['Authorization']}\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
        )
        try:
            for _ in range(40):  # one byte every 0.1 s: 10 bytes a second
                sock.sendall(b"x")
                time.sleep(0.1)
            cut = False
        except OSError:
            cut = True
        if not cut:  # the socket may still take bytes: its reading side is gone
            sock.settimeout(5)
            try:
                cut = sock.recv(65536) == b""
            except OSError:
                cut = True
    assert cut
    assert time.monotonic() - started < 6
    for _ in range(20):
        response = requests.get(proxy_url(strict.url, proxied["id"]), headers=reader, timeout=5)
        if response.status_code == 200:
            break
        time.sleep(0.05)
    assert response.status_code == 200  # the one slot is free again


@python_only
@pytest.mark.parametrize("caches", ["0", "60"])
def test_no_database_connection_is_held_while_a_backend_stalls(
    proxy_with, reader, proxied, upstream, caches
):
    from sqlalchemy.pool import QueuePool

    from applications_api.database import db

    stalled = proxy_with(AUTH_CACHE_SECONDS=caches, APP_PROXY_CACHE_SECONDS=caches)
    release = threading.Event()

    def stall(handler, record):
        release.wait(10)
        send(handler, 200, b"late")

    url = proxy_url(stalled.url, proxied["id"])
    assert requests.get(url, headers=reader, timeout=10).status_code == 200  # warm caches
    upstream.answer = stall
    calls = len(upstream.received)
    caller = threading.Thread(
        target=requests.get, args=(url,), kwargs={"headers": reader, "timeout": 30}
    )
    caller.start()
    try:
        deadline = time.monotonic() + 5
        while len(upstream.received) == calls and time.monotonic() < deadline:
            time.sleep(0.01)
        with stalled.app.app_context():
            pool = db.engine.pool
            assert isinstance(pool, QueuePool)  # (pool_size: database.engine_options)
            assert pool.checkedout() == 0
    finally:
        release.set()
        caller.join(10)


def counted(app_id, error):
    from applications_api.observability import PROXY_UPSTREAM_ERRORS

    return PROXY_UPSTREAM_ERRORS.labels(app_id, error)._value.get()


@python_only
def test_a_caller_that_breaks_off_its_upload_is_counted_as_such(
    proxy, reader, proxied, upstream, caplog
):
    app_id = str(proxied["id"])
    before = {error: counted(app_id, error) for error in ("client_abort", "unreachable")}
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"PUT /api/v1/app_proxy/{app_id}/up HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {reader['Authorization']}\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"x" * 10
        )
        sock.shutdown(socket.SHUT_WR)  # and gone
        sock.recv(65536)
    deadline = time.monotonic() + 5
    while counted(app_id, "client_abort") == before["client_abort"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert counted(app_id, "unreachable") == before["unreachable"]  # not the backend's fault
    assert "failed" not in caplog.text


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_request_with_a_body_is_never_sent_twice(proxy, reader, proxied, upstream, method):
    """A backend that acts on a request and drops the connection before answering (on a
    connection pooled from an earlier call): the proxy answers 502 and never sends that
    body again, whatever the method."""
    assert proxy.client.get(proxy_url("", proxied["id"]), headers=reader).status_code == 200
    calls = []

    def act_then_drop(handler, record):
        calls.append(record.method)
        handler.close_connection = True  # no answer: the connection just ends

    upstream.answer = act_then_drop
    response = proxy.client.open(
        proxy_url("", proxied["id"]), method=method, data=b"order", headers=reader
    )
    assert response.status_code == 502
    assert calls == [method]
