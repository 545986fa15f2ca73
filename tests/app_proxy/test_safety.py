"""Paths that escape the base, denied networks, and the signature's guarantees."""

import socket

import pytest

from applications_api.app_proxy.network_policy import DeniedAddress, approved_address


def raw_get(base_url, target, headers):
    """Send `target` byte for byte (no client-side normalisation) and return the status."""
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
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "path",
    [
        "../secret",
        "a/../../secret",
        "%2e%2e/secret",
        "%2E%2E/secret",
        ".%2e/secret",
        "a/%2e%2e/%2e%2e/secret",
        "%252e%252e/secret",
        "a%2f..%2f..%2fsecret",
        "..%5csecret",
        "..",
    ],
)
def test_dot_segments_climbing_above_the_base_are_400(proxy, reader, proxied, upstream, path):
    status = raw_get(proxy.url, f"/api/v1/app_proxy/{proxied['id']}/{path}", reader)
    assert status == 400
    assert upstream.received == []


def test_dot_segments_inside_the_base_are_resolved(proxy, reader, proxied, upstream):
    status = raw_get(proxy.url, f"/api/v1/app_proxy/{proxied['id']}/a/./b/../c", reader)
    assert status == 200
    assert upstream.last.path == "/base/a/c"


def test_encoded_characters_pass_through_unchanged(proxy, reader, proxied, upstream):
    raw_get(proxy.url, f"/api/v1/app_proxy/{proxied['id']}/files/a%2Fb%20c?q=%26", reader)
    assert upstream.last.path == "/base/files/a%2Fb%20c?q=%26"


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]"],
)
def test_denied_networks_are_refused_before_connecting(create, proxy, reader, host):
    app = create(is_proxy_available=True, config={"web_url": f"http://{host}/"})
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/latest/meta-data", headers=reader)
    assert response.status_code == 502
    assert "denied" in response.json["message"]


def test_a_hostname_resolving_into_a_denied_network_is_refused():
    import ipaddress

    # localhost resolves to 127.0.0.1 (and ::1); deny loopback and it is refused
    with pytest.raises(DeniedAddress):
        approved_address(
            "localhost", 80, (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
        )


def test_denied_networks_are_a_setting(proxy_with, create, reader, upstream):
    strict = proxy_with(APP_PROXY_DENIED_NETWORKS="127.0.0.0/8")
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/"})
    response = strict.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert upstream.received == []


def test_the_service_itself_is_never_a_target(proxy_with, create, reader):
    from harness.servers import free_port

    port = free_port()
    itself = proxy_with(GUNICORN_BIND=f"127.0.0.1:{port}")
    app = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{port}/"})
    response = itself.client.get(f"/api/v1/app_proxy/{app['id']}/metrics", headers=reader)
    assert response.status_code == 502
    assert "denied" in response.json["message"]


def test_production_denies_loopback_by_default(proxy_with, create, reader, upstream):
    production = proxy_with(APP_ENV="production")
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/"})
    response = production.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 502
    assert upstream.received == []


# Every way of writing this host's unspecified address, which Linux routes to its own
# listeners: a web_url there reached the server's own /metrics past loopback's denial.
UNSPECIFIED = ["0.0.0.0", "0", "0x0", "0.0", "000.000.000.000", "[::]", "[::ffff:0.0.0.0]"]


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("host", UNSPECIFIED)
def test_the_unspecified_address_is_denied_however_written(
    proxy_with, create, reader, upstream, host, environment
):
    proxy = proxy_with(APP_ENV=environment)
    app = create(is_proxy_available=True, config={"web_url": f"http://{host}:{upstream.port}/"})
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/metrics", headers=reader)
    assert response.status_code == 502
    assert "denied" in response.json["message"]
    assert upstream.received == []


@pytest.mark.parametrize("order", ["public first", "denied first"])
def test_a_name_with_one_denied_address_among_others_is_refused(monkeypatch, order):
    """A client may connect to any address a name resolves to: all of them are checked."""
    import ipaddress

    answers = [("93.184.215.14", 80), ("169.254.169.254", 80)]
    if order == "denied first":
        answers.reverse()
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *args, **kwargs: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", address) for address in answers
        ],
    )
    with pytest.raises(DeniedAddress):
        approved_address("mixed.example", 80, (ipaddress.ip_network("169.254.0.0/16"),))


@pytest.mark.parametrize(
    ("answer", "approved"),
    [
        (("fe80::1%eth0", 80, 0, 2), None),  # link-local, with its zone: denied
        (("2001:db8::1%eth0", 80, 0, 2), "2001:db8::1"),  # the zone is not the address
    ],
)
def test_an_ipv6_answer_with_a_zone_is_judged_by_its_address(monkeypatch, answer, approved):
    import ipaddress

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *args, **kwargs: [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", answer)],
    )
    denied = (ipaddress.ip_network("fe80::/10"),)
    if approved is None:
        with pytest.raises(DeniedAddress):
            approved_address("scoped.example", 80, denied)
    else:
        assert approved_address("scoped.example", 80, denied) == ipaddress.ip_address(approved)


def test_a_path_nginx_normalizes_into_app_proxy_is_the_app_s_json_404(
    proxy, reader, proxied, upstream
):
    """nginx routes /x/../api/v1/app_proxy/… by its normalized path; the app, given the raw
    target, routes it nowhere: the caller gets that 404, not a claim the registry is down."""
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET /x/../api/v1/app_proxy/{proxied['id']}/ HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: {reader['Authorization']}\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"404", reply[:300]
    assert b"registry" not in body
    assert b'"code": 404' in body or b'"code":404' in body
    assert upstream.received == []


def test_a_name_that_changes_its_answer_after_the_check_is_not_followed(
    proxy, monkeypatch, create, reader, upstream
):
    """DNS rebinding: the name resolves to an allowed address for the check, then to
    another for whoever looks it up again. Both transfers connect to the address the
    check approved, so the second answer is never used."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host != "rebinding.example":
            return real(host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"  # nothing listens there
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    app = create(
        is_proxy_available=True, config={"web_url": f"http://rebinding.example:{upstream.port}/"}
    )
    response = proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader)
    assert response.status_code == 200
    assert lookups == ["rebinding.example"]  # the check's, and no other
    assert upstream.last.headers["Host"] == f"rebinding.example:{upstream.port}"


# (the nginx transfer answers 502 for such a web_url: a matter of its own)
@pytest.mark.parametrize("via", ["python"], indirect=True)
def test_a_web_url_with_characters_beyond_ascii_is_sent_as_utf_8(proxy, create, reader, upstream):
    """RFC 3987 §3.1: an IRI's characters become URI characters as UTF-8 octets, each
    percent-encoded, whatever their code point (é is %C3%A9, never the Latin-1 %E9)."""
    app = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/café-Ā€/"})
    assert proxy.client.get(f"/api/v1/app_proxy/{app['id']}/x", headers=reader).status_code == 200
    assert upstream.last.path == "/caf%C3%A9-%C4%80%E2%82%AC/x"
