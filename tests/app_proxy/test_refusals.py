"""What a refused proxy call answers, and what it counts: a caller is told why, and the
operator's upstream-error figures count what the backend's side refused (a denied or
unresolvable host), under that application, never the caller's own mistakes."""

import json
import socket

import pytest

python_only = pytest.mark.parametrize("via", ["python"], indirect=True)


def raw_call(base_url, target, headers):
    """Send `target` byte for byte; return the status and the JSON body."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items()),
            "",
            "",
        ]
        sock.sendall("\r\n".join(lines).encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def counted(app_id, error):
    from applications_api.observability import PROXY_UPSTREAM_ERRORS

    return PROXY_UPSTREAM_ERRORS.labels(str(app_id), error)._value.get()


def test_a_path_climbing_above_the_base_is_told_so(proxy, reader, proxied):
    status, body = raw_call(proxy.url, f"/api/v1/app_proxy/{proxied['id']}/a/../../etc", reader)
    assert status == 400
    assert "climbs above" in body["message"]


def test_a_route_not_spelled_plainly_is_told_how_to_write_it(proxy, reader, proxied):
    status, body = raw_call(proxy.url, f"/api/v1/app%5Fproxy/{proxied['id']}/x", reader)
    assert status == 404
    assert "plain digits" in body["message"]


@python_only
def test_a_denied_backend_is_counted_under_its_application(proxy, create, reader):
    denied = create(is_proxy_available=True, config={"web_url": "http://169.254.169.254/"})
    other = create(is_proxy_available=True, config={"web_url": "http://169.254.169.254/"})
    before = counted(denied["id"], "denied"), counted(other["id"], "denied")
    status, body = raw_call(proxy.url, f"/api/v1/app_proxy/{denied['id']}/x", reader)
    assert (status, "denied" in body["message"]) == (502, True)
    assert counted(denied["id"], "denied") == before[0] + 1
    assert counted(other["id"], "denied") == before[1]


@python_only
def test_a_callers_own_mistake_is_no_upstream_error(proxy, reader, proxied):
    from applications_api.observability import PROXY_UPSTREAM_ERRORS

    def total():
        return sum(
            sample.value
            for metric in PROXY_UPSTREAM_ERRORS.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    before = total()
    status, _ = raw_call(proxy.url, f"/api/v1/app_proxy/{proxied['id']}/../x", reader)
    assert status == 400
    assert total() == before
