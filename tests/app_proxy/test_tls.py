"""https backends through nginx: SNI and certificate verification for web_url's name,
while the connection goes to the address the denied-networks check approved."""

import ssl
import subprocess

import pytest

from tests.support.upstream import Upstream

nginx_only = pytest.mark.parametrize("via", ["nginx"], indirect=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA, and a certificate it signed for "localhost" (openssl's CLI)."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=app_proxy test CA",
    )
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    return folder


@pytest.fixture
def https_upstream(certificates):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    server = Upstream(tls=context)
    yield server
    server.close()


@pytest.fixture
def trusting(proxy_with, certificates):
    return proxy_with(nginx={"proxy_ssl_trusted_certificate": certificates / "ca.pem"})


@nginx_only
def test_an_https_backend_is_reached_by_its_name(trusting, create, reader, https_upstream):
    app = create(
        is_proxy_available=True,
        config={"web_url": f"https://localhost:{https_upstream.port}/base/"},
    )
    response = trusting.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 200
    assert https_upstream.last.path == "/base/x"
    assert https_upstream.last.headers["Host"] == f"localhost:{https_upstream.port}"


@nginx_only
def test_a_certificate_for_another_name_is_refused(trusting, create, reader, https_upstream):
    app = create(
        is_proxy_available=True,
        config={"web_url": f"https://127.0.0.1:{https_upstream.port}/base/"},
    )
    response = trusting.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert response.json["code"] == 502
    assert https_upstream.received == []
