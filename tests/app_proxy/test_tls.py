"""https backends on both transfers: SNI and certificate verification for web_url's name
against the CAs of APP_PROXY_CA_BUNDLE (nginx: proxy_ssl_trusted_certificate), while the
connection goes to the address the denied-networks check approved; and kept-alive
connections, never shared between names."""

import socket
import ssl
import time

import pytest

from harness.tls import server_certificate, throwaway_ca
from tests.support.upstream import Upstream

nginx_only = pytest.mark.parametrize("via", ["nginx"], indirect=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA; server.pem, its certificate for "localhost"; and both.pem, for
    "localhost" and this machine's name."""
    folder = tmp_path_factory.mktemp("tls")
    throwaway_ca(folder)
    server_certificate(folder, "server", "DNS:localhost")
    server_certificate(folder, "both", "DNS:localhost", f"DNS:{socket.gethostname()}")
    return folder


def https_server(certificates, stem):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / f"{stem}.pem", certificates / f"{stem}.key")
    return Upstream(tls=context)


@pytest.fixture
def https_upstream(certificates):
    server = https_server(certificates, "server")
    yield server
    server.close()


@pytest.fixture
def trusting(proxy_with, certificates):
    """The proxy trusting the throwaway CA, on either transfer."""
    ca = certificates / "ca.pem"
    return proxy_with(APP_PROXY_CA_BUNDLE=str(ca), nginx={"proxy_ssl_trusted_certificate": ca})


def backend(create, https_upstream, host="localhost"):
    app = create(
        is_proxy_available=True,
        config={"web_url": f"https://{host}:{https_upstream.port}/base/"},
    )
    return f"/api/v1/app_proxy/{app['id']}"


def test_an_https_backend_is_reached_by_its_name(trusting, create, reader, https_upstream):
    response = trusting.client.get(f"{backend(create, https_upstream)}/x", headers=reader)
    assert response.status_code == 200
    assert https_upstream.last.path == "/base/x"
    assert https_upstream.last.headers["Host"] == f"localhost:{https_upstream.port}"


def test_a_certificate_for_another_name_is_refused(trusting, create, reader, https_upstream):
    proxied = backend(create, https_upstream, host="127.0.0.1")
    response = trusting.client.get(f"{proxied}/x", headers=reader)
    assert response.status_code == 502
    assert response.json["code"] == 502
    assert https_upstream.received == []


def test_the_system_cas_do_not_trust_a_private_one(proxy_with, create, reader, https_upstream):
    response = proxy_with().client.get(f"{backend(create, https_upstream)}/x", headers=reader)
    assert response.status_code == 502
    assert https_upstream.received == []


def test_sequential_calls_reuse_a_few_connections(trusting, create, reader, https_upstream):
    proxied = backend(create, https_upstream)
    statuses = [trusting.client.get(f"{proxied}/x", headers=reader).status_code for _ in range(100)]
    assert statuses == [200] * 100
    assert https_upstream.connections <= 4


def test_names_on_one_address_never_share_a_connection(trusting, create, reader, https_upstream):
    verified = backend(create, https_upstream, host="localhost")
    other_name = backend(create, https_upstream, host="127.0.0.1")  # the certificate lacks it
    for _ in range(3):
        assert trusting.client.get(f"{verified}/x", headers=reader).status_code == 200
    response = trusting.client.get(f"{other_name}/y", headers=reader)
    assert response.status_code == 502
    assert trusting.client.get(f"{verified}/x", headers=reader).status_code == 200
    # all four on the first connection, kept alive across the refusal; none for the other
    assert [(r.path, r.connection) for r in https_upstream.received] == [("/base/x", 1)] * 4


def test_each_name_on_one_address_keeps_connections_of_its_own(
    trusting, create, reader, certificates
):
    names = ("localhost", socket.gethostname())
    try:
        loopback = socket.gethostbyname(names[1]) == "127.0.0.1"
    except OSError:
        loopback = False
    if not loopback:
        pytest.skip(f"this machine's name, {names[1]}, does not resolve to 127.0.0.1")
    server = https_server(certificates, "both")  # (nginx checks no IP address of a certificate)
    try:
        proxied = {name: backend(create, server, host=name) for name in names}
        for _ in range(3):
            for name in names:
                response = trusting.client.get(f"{proxied[name]}/x", headers=reader)
                assert response.status_code == 200
        used = {
            name: {r.connection for r in server.received if r.headers["Host"].startswith(name)}
            for name in names
        }
        assert sorted(used.values()) == [{1}, {2}]  # one kept-alive connection for each
    finally:
        server.close()


def test_a_backend_closing_idle_connections_fails_no_call(trusting, create, reader, https_upstream):
    """The backend drops a connection idle for 1 s under the next request (its close
    crossing the request on the wire). nginx sends a bodiless GET again on a new
    connection, but never a POST, nor a body it began to stream (nor does the embedded
    transfer send a body again): the pools must let an idle connection go first."""
    https_upstream.idle_timeout = 1.0
    proxied = backend(create, https_upstream)
    statuses = []
    for method, body in (("GET", None), ("POST", b"x" * 100), ("PUT", b"y" * 100_000)):
        for pause in (1.1, 0.3, 0.9):
            time.sleep(pause)
            response = trusting.client.open(f"{proxied}/x", method, headers=reader, data=body)
            statuses.append((method, pause, response.status_code))
    assert [status for *_, status in statuses] == [200] * 9, statuses
    assert len({record.connection for record in https_upstream.received}) < 9  # (some reused)


def test_bytes_after_an_answer_over_tls_are_never_taken_for_the_next(
    trusting, create, reader, https_upstream
):
    """As over plain http (test_hostile_backends.py), where the bytes behind the answer
    may wait decrypted in the TLS layer, which no poll of the socket sees."""

    def smuggling(handler, record):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        handler.wfile.flush()
        time.sleep(0.1)  # (the body in a TLS record of its own, read after the head)
        handler.wfile.write(b"okHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
        handler.wfile.flush()

    def second(handler, record):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        handler.wfile.flush()

    https_upstream.answer = smuggling
    path = f"{backend(create, https_upstream)}/x"
    first = trusting.client.get(path, headers=reader)
    assert (first.status_code, first.data) == (200, b"ok")
    https_upstream.answer = second
    answer = trusting.client.get(path, headers=reader)
    assert (answer.status_code, answer.data) == (200, b"second")
