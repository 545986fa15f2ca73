"""Smoke checks of the deployed stack, through nginx as clients reach it."""

import hashlib
import json
import os
import random
import socket
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from e2e.stack import BIN, ROOT, SIGNING_KEY
from harness.servers import register_backend
from tests.support.backend_verifier import send_raw, user_at
from tests.support.upstream import send, send_chunked

MIB = 1 << 20
BIG = 50 * MIB


def pseudo_random_chunks(total, seed):
    rng = random.Random(seed)
    for _ in range(total // MIB):
        yield rng.randbytes(MIB)


def digest(chunks):
    sha = hashlib.sha256()
    size = 0
    for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def test_healthcheck(stack):
    response = requests.get(f"{stack.url}/api/v1/healthcheck/", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["X-Request-ID"]


def test_create_list_filter_soft_delete(stack, staff):
    api = f"{stack.url}/api/v1/applications/"
    created = requests.post(
        api,
        json={"name": "E2E shop front", "application_type": "commerce"},
        headers=staff,
        timeout=10,
    )
    assert created.status_code == 201
    app_id = created.json()["id"]
    listed = requests.get(
        api,
        params={"name__icontains": "e2e SHOP", "application_type": "commerce", "is_active": "true"},
        headers=staff,
        timeout=10,
    )
    assert [row["id"] for row in listed.json()] == [app_id]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert requests.delete(f"{api}{app_id}/", headers=staff, timeout=10).status_code == 204
    assert requests.get(f"{api}{app_id}/", headers=staff, timeout=10).json()["is_active"] is False


def test_unauthenticated_is_401_json(stack):
    response = requests.get(f"{stack.url}/api/v1/applications/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert response.json()["code"] == 401


def proxied_app(stack, staff, upstream):
    return register_backend(stack.url, staff, f"{upstream.url}/ext/", "E2E backend")


def test_streamed_50_mb_download_through_the_proxy(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send_chunked(
        handler,
        200,
        pseudo_random_chunks(BIG, seed=1),
        {"Content-Type": "application/octet-stream"},
    )
    with requests.get(
        f"{stack.url}/api/v1/app_proxy/{app_id}/big.bin", headers=staff, stream=True, timeout=120
    ) as response:
        assert response.status_code == 200
        received = digest(response.iter_content(MIB))
    assert received == digest(pseudo_random_chunks(BIG, seed=1))


def test_streamed_50_mb_upload_through_the_proxy(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send(handler, 201, b"stored")
    response = requests.put(
        f"{stack.url}/api/v1/app_proxy/{app_id}/upload",
        data=pseudo_random_chunks(BIG, seed=2),
        headers=staff,
        timeout=120,
    )
    assert response.status_code == 201
    assert digest([upstream.last.body]) == digest(pseudo_random_chunks(BIG, seed=2))


def test_forwarded_headers_cannot_be_spoofed_and_the_identity_verifies(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send(handler, 200, b"ok")
    requests.get(
        f"{stack.url}/api/v1/app_proxy/{app_id}/who?x=1",
        headers={
            **staff,
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil",
            "X-Request-ID": "e2e-spoof-check",
        },
        timeout=10,
    )
    received = upstream.last.headers
    assert received["X-Forwarded-For"] == "127.0.0.1"
    assert received["X-Forwarded-Host"] == f"127.0.0.1:{stack.nginx_port}"
    assert received["X-Request-ID"] == "e2e-spoof-check"
    assert user_at(upstream.last, app_id, body=b"", key=operator_key(app_id)) is not None


def operator_key(app_id):
    """The application's first key as the operator prints it for the backend."""
    printed = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "app-proxy-key", str(app_id)],
        cwd=ROOT,
        env={**os.environ, "APP_PROXY_SIGNING_KEY": SIGNING_KEY},
        capture_output=True,
        text=True,
        check=True,
    )
    first = next(
        line for line in printed.stdout.splitlines() if line.startswith(f"application-{app_id} ")
    )
    return bytes.fromhex(first.split()[-1])


def test_raw_targets_arrive_as_signed_through_gunicorn(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    sent = 'a%2fb/%41;v=1//c?q={1}&r=a|b^c&s=%zz&t=&u=a%2f"<>'
    assert send_raw(stack.url, "GET", f"/api/v1/app_proxy/{app_id}/{sent}", staff) == 200
    assert upstream.last.path == (
        "/ext/a%2fb/%41;v=1//c?q=%7B1%7D&r=a%7Cb%5Ec&s=%25zz&t=&u=a%2f%22%3C%3E"
    )
    assert user_at(upstream.last, app_id, body=b"", key=operator_key(app_id)) is not None


def test_a_raw_non_ascii_target_is_a_json_400_never_forwarded(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    before = len(upstream.received)
    assert send_raw(stack.url, "GET", f"/api/v1/app_proxy/{app_id}/café", staff) == 400
    assert len(upstream.received) == before


def metric(text, name, **labels):
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_metrics_add_up_every_worker(stack):
    endpoint = "/api/v1/healthcheck/"

    def count():
        text = requests.get(f"{stack.url}/metrics", timeout=10).text
        return metric(text, "applications_http_requests_total", endpoint=endpoint, status="200")

    before = count()
    for _ in range(40):  # a new connection each: the two workers share them
        requests.get(f"{stack.gunicorn_url}{endpoint}", timeout=10).close()
    time.sleep(0.2)
    assert count() - before == 40
    files = os.listdir(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    assert len({name.rsplit("_", 1)[-1] for name in files}) >= 2  # several workers wrote


def test_one_json_log_line_per_request_without_secrets(stack, staff):
    requests.get(
        f"{stack.url}/api/v1/applications/",
        headers={**staff, "X-Request-ID": "e2e-log-check", "Cookie": "sid=hunter2"},
        timeout=10,
    )
    time.sleep(0.3)
    lines = [json.loads(line) for line in stack.log_lines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "e2e-log-check"]
    assert len(mine) == 1
    assert mine[0]["status"] == 200
    assert mine[0]["remote_addr"] == "127.0.0.1"
    assert mine[0]["user_id"]
    text = stack.log.read_text()
    assert stack.staff_token not in text
    assert "hunter2" not in text


def start_gunicorn_with(env_changes):
    env = {**os.environ, "GUNICORN_BIND": "127.0.0.1:0", **env_changes}
    return subprocess.run(
        [BIN / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_invalid_setting_stops_start_up_with_one_line():
    for changes, expected in (
        ({"DATABASE_URL": "mysql://x/y"}, "configuration error: DATABASE_URL:"),
        ({"APP_PROXY_CONNECT_TIMEOUT": "-1"}, "configuration error: APP_PROXY_CONNECT_TIMEOUT:"),
        (
            {"APP_PROXY_DENIED_NETWORKS": "10.0.0.0/99"},
            "configuration error: APP_PROXY_DENIED_NETWORKS:",
        ),
        (
            {"APP_ENV": "production", "APP_PROXY_SIGNING_KEY": ""},
            "configuration error: APP_PROXY_SIGNING_KEY:",
        ),
        ({"GUNICORN_WORKERS": "many"}, "configuration error: GUNICORN_WORKERS:"),
        (
            {"GUNICORN_WORKERS": "4   # about one per core"},
            "configuration error: GUNICORN_WORKERS:",
        ),
        (
            {"APP_PROXY_SIGNING_KEY": "REPLACE_WITH_64_HEX_DIGITS"},
            "configuration error: APP_PROXY_SIGNING_KEY: replace the placeholder",
        ),
    ):
        result = start_gunicorn_with(changes)
        assert result.returncode != 0
        errors = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "configuration error" in line
        ]
        assert len(errors) == 1 and errors[0].startswith(expected), result.stderr


def test_forwarded_headers_are_trusted_exactly_as_trusted_proxies_says(stack, staff, upstream):
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send(handler, 200, b"ok")
    spoofs = {
        "X-Forwarded-Ssl": "on",
        "X-Forwarded-Protocol": "ssl",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "6.6.6.6",
    }
    through_nginx = requests.get(
        f"{stack.url}/api/v1/app_proxy/{app_id}/who", headers={**staff, **spoofs}, timeout=10
    )
    assert through_nginx.status_code == 200  # never gunicorn's HTML 400
    assert upstream.last.headers["X-Forwarded-Proto"] == "http"  # nginx's, not the caller's
    alone = stack.gunicorn_alone()  # TRUSTED_PROXIES=0: no forwarded header is believed
    direct = requests.get(
        f"{alone.url}/api/v1/app_proxy/{app_id}/who", headers={**staff, **spoofs}, timeout=10
    )
    assert direct.status_code == 200
    assert upstream.last.headers["X-Forwarded-Proto"] == "http"
    assert upstream.last.headers["X-Forwarded-For"] == "127.0.0.1"


def raw_exchange(url, head, body):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and reply.rstrip().endswith(b"}"):
                break
    return reply


@pytest.mark.parametrize("size_line", [b"0x4", b"+4", b"4 ", b"4;a\x01b"])
def test_a_malformed_chunked_upload_to_gunicorn_alone_is_a_json_400(
    stack, staff, upstream, size_line
):
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send(handler, 200, b"ok")
    head = (
        f"POST /api/v1/app_proxy/{app_id}/up HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: {staff['Authorization']}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = raw_exchange(stack.gunicorn_alone().url, head, size_line + b"\r\nabcd\r\n0\r\n\r\n")
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), reply[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["code"] == 400
    assert b"Traceback" not in stack.gunicorn_alone().log.read_bytes()


def check_deployment(*args):
    return subprocess.run(
        [ROOT / "scripts" / "check-deployment.sh", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_guide_s_check_passes_on_the_deployment(stack, staff, upstream):
    """The last step of docs/deployment.md, run as the guide says."""
    app_id = proxied_app(stack, staff, upstream)
    upstream.answer = lambda handler, record: send(handler, 200, b"ok")
    token = staff["Authorization"].removeprefix("Token ")
    done = check_deployment(stack.url, token, str(app_id))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok:") == 3
    assert upstream.last.path.startswith("/")


def test_the_guide_s_check_says_what_a_refusal_means(stack, staff):
    token = staff["Authorization"].removeprefix("Token ")
    done = check_deployment(stack.url, token, "999999")
    assert done.returncode == 1
    assert "app_proxy answered 404" in done.stderr
    assert check_deployment(stack.url, "not-a-token").returncode == 1
