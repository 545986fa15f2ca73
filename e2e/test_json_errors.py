"""Every layer answers in the service's JSON error shape: nginx's own refusals (a
malformed request, a request line, headers or body too large, gunicorn down or slow),
and requests that pass nginx are never refused by gunicorn in HTML."""

import json
import socket

import pytest
import requests

from harness.servers import Nginx, deployed_site, free_port
from tests.support.tcp_tools import BlackHole


def raw(url, data) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return (
        int(head.split(b" ", 2)[1]),
        dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:]),
        body,
    )


def assert_json_error(status, headers, body, expected):
    assert status == expected, body[:300]
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == expected


@pytest.fixture
def nginx_before(request):
    """deploy/nginx.conf in front of an app port given by the test (nothing, a black hole)."""
    servers = []

    def start(app_port, **directives):
        port = free_port()
        servers.append(
            Nginx(
                deployed_site(port, app_port, **directives), port, ready_path="/_app_proxy_decision"
            )
        )  # nginx answers: 404
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


def test_a_malformed_request_is_a_json_400(stack):
    assert_json_error(*raw(stack.url, b"GARBAGE\r\n\r\n"), 400)


def test_a_request_line_too_long_is_a_json_414(stack, staff):
    target = "/api/v1/applications/?name=" + "x" * 9000
    line = f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    assert_json_error(*raw(stack.url, line), 414)


def test_headers_too_large_are_a_json_400(stack):
    headers = "".join(f"X-Pad-{i}: {'y' * 6000}\r\n" for i in range(8))
    request = f"GET /api/v1/healthcheck/ HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    assert_json_error(*raw(stack.url, request.encode()), 400)


def test_a_body_over_the_api_limit_is_a_json_413(stack, staff):
    response = requests.post(
        f"{stack.url}/api/v1/applications/",
        data=b"x" * (2 << 20),
        headers={**staff, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["code"] == 413


def test_what_nginx_passes_on_gunicorn_takes(stack, staff):
    """Request lines and headers nginx accepts reach the app; more headers than any
    client sends are gunicorn's JSON 431, never its HTML."""
    long_query = requests.get(
        f"{stack.url}/api/v1/applications/", params={"name": "x" * 6000}, headers=staff, timeout=10
    )
    assert long_query.status_code == 200
    many = {f"X-Many-{i}": "v" for i in range(100)}
    assert (
        requests.get(
            f"{stack.url}/api/v1/applications/", headers={**staff, **many}, timeout=10
        ).status_code
        == 200
    )
    too_many = {f"X-Many-{i}": "v" for i in range(200)}
    refused = requests.get(
        f"{stack.url}/api/v1/applications/", headers={**staff, **too_many}, timeout=10
    )
    assert refused.status_code == 431
    assert refused.json()["code"] == 431


@pytest.mark.parametrize("path", ["/api/v1/applications/", "/api/v1/app_proxy/1/x"])
def test_gunicorn_down_is_a_json_502(nginx_before, staff, path):
    url = nginx_before(free_port())  # nothing listens there
    response = requests.get(url + path, headers=staff, timeout=10)
    assert response.status_code == 502
    assert response.json()["code"] == 502


def test_gunicorn_too_slow_is_a_json_504(nginx_before, staff):
    hole = BlackHole()
    try:
        url = nginx_before(hole.port, proxy_read_timeout="1s")
        response = requests.get(f"{url}/api/v1/applications/", headers=staff, timeout=10)
    finally:
        hole.close()
    assert response.status_code == 504
    assert response.json()["code"] == 504


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (b"GET /_app_proxy_decision HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
        (b"GET /_error/400 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
        (b"TRACE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405),
        (b"GET / HTTP/2.0\r\nHost: t\r\nConnection: close\r\n\r\n", 505),
        (
            b"POST /api/v1/applications/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
            b"Connection: close\r\n\r\n",
            501,
        ),
    ],
    ids=["internal location", "error page", "TRACE", "HTTP/2.0 line", "unknown coding"],
)
def test_nginx_refuses_in_json_without_its_version(stack, request_bytes, expected):
    status, headers, body = raw(stack.url, request_bytes)
    assert_json_error(status, headers, body, expected)
    assert headers.get("Server") == "nginx"


METRICS_SPELLINGS = [
    "/metrics",
    "/metrics/",
    "/metrics%2f",
    "/metrics%2F",
    "//metrics",
    "/x/../metrics",
    "/api/v1/%2e%2e/%2e%2e/metrics",
    "/metrics?format=text",
    "/metrics;x",
]


@pytest.mark.parametrize("path", METRICS_SPELLINGS)
def test_metrics_stay_off_the_public_site_however_spelled(stack, nginx_before, path):
    """The site allows its scraper's address alone (here 192.0.2.1, so these callers on
    127.0.0.1 are the public)."""
    public = nginx_before(stack.gunicorn.port, allow="192.0.2.1")
    line = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = raw(public, line)
    assert status in (403, 404), (status, body[:200])
    assert headers["Content-Type"].startswith("application/json")
    assert b"applications_http_requests_total" not in body


@pytest.mark.parametrize("path", METRICS_SPELLINGS[1:4])
def test_the_app_answers_metrics_under_one_spelling(stack, path):
    line = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = raw(stack.gunicorn_url, line)
    assert_json_error(status, headers, body, 404)
