import json
import logging
import os
import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from applications_api.observability import JsonFormatter
from harness.servers import Gunicorn
from tests.support.app import make_env


def request_lines(caplog):
    return [r for r in caplog.records if r.name == "applications_api.requests"]


def test_every_response_carries_a_request_id(client, reader):
    given = client.get("/api/v1/applications/", headers={**reader, "X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.get("/api/v1/applications/", headers={**reader, "X-Request-ID": "bad id!"})
    assert len(made.headers["X-Request-ID"]) == 32
    assert client.get("/api/v1/nowhere").headers["X-Request-ID"]


def test_one_json_line_per_request_without_secrets(client, reader, create, caplog):
    created = create()
    caplog.clear()
    # (the client's jar: a Cookie given in headers= never reaches the app)
    client.set_cookie("session", "hunter2")
    with caplog.at_level(logging.INFO, logger="applications_api.requests"):
        client.get(
            f"/api/v1/applications/{created['id']}/?x=1",
            headers={**reader, "X-Request-ID": "rid-1"},
        ).close()
    [record] = request_lines(caplog)
    line = JsonFormatter().format(record)
    fields = json.loads(line)
    assert fields["request_id"] == "rid-1"
    assert fields["method"] == "GET"
    assert fields["path"] == f"/api/v1/applications/{created['id']}/"
    assert fields["status"] == 200
    assert fields["application_id"] == created["id"]
    assert isinstance(fields["user_id"], int)
    assert fields["duration_ms"] >= 0
    assert fields["time"].endswith("+00:00")
    token = reader["Authorization"].split()[1]
    assert token not in line
    assert "hunter2" not in line


def test_unauthenticated_requests_are_logged_too(client, caplog):
    with caplog.at_level(logging.INFO, logger="applications_api.requests"):
        client.get("/api/v1/applications/").close()
    [record] = request_lines(caplog)
    assert record.fields["status"] == 401
    assert record.fields["user_id"] is None


def sample(client, name, **labels):
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and all(
                metric.labels.get(k) == str(v) for k, v in labels.items()
            ):
                return metric.value
    return 0.0


def test_metrics_count_requests_by_endpoint_and_status(client, reader):
    endpoint = "/api/v1/applications/<id:app_id>/"
    before = sample(
        client, "applications_http_requests_total", endpoint=endpoint, method="GET", status=404
    )
    for _ in range(3):
        client.get("/api/v1/applications/999999/", headers=reader).close()
    after = sample(
        client, "applications_http_requests_total", endpoint=endpoint, method="GET", status=404
    )
    assert after - before == 3
    assert (
        sample(
            client,
            "applications_http_request_duration_seconds_count",
            endpoint=endpoint,
            method="GET",
        )
        >= 3
    )
    response = client.get("/metrics")
    assert response.content_type.startswith("text/plain")


def test_proxy_metrics_by_application(client, reader, create, proxied, upstream):
    client.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=reader).close()
    assert (
        sample(client, "app_proxy_upstream_duration_seconds_count", application_id=proxied["id"])
        >= 1
    )
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    dead = create(is_proxy_available=True, config={"web_url": f"http://127.0.0.1:{port}/"})
    before = sample(
        client, "app_proxy_upstream_errors_total", application_id=dead["id"], error="unreachable"
    )
    assert client.get(f"/api/v1/app_proxy/{dead['id']}/x", headers=reader).status_code == 502
    assert (
        sample(
            client,
            "app_proxy_upstream_errors_total",
            application_id=dead["id"],
            error="unreachable",
        )
        == before + 1
    )


def test_forwarded_for_is_trusted_only_from_configured_proxies(
    make_app, database_url, reader, proxied, upstream
):
    spoofed = {**reader, "X-Forwarded-For": "6.6.6.6, 10.1.1.1"}
    direct = make_app(database_url).test_client()
    direct.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=spoofed)
    assert upstream.last.headers["X-Forwarded-For"] == "127.0.0.1"

    behind_nginx = make_app(database_url, TRUSTED_PROXIES="1").test_client()
    behind_nginx.get(f"/api/v1/app_proxy/{proxied['id']}/x", headers=spoofed)
    assert upstream.last.headers["X-Forwarded-For"] == "10.1.1.1"


def test_invented_methods_cannot_grow_the_metrics(client):
    def size():
        return len(client.get("/metrics").data)

    client.get("/api/v1/healthcheck/")  # the label sets this test will ever need
    client.open("/api/v1/healthcheck/", method="QAAAAA")
    size()  # /metrics' own label sets
    before = size()
    for i in range(1000):
        method = "Q" + "".join(chr(ord("A") + int(d)) for d in f"{i:04d}")
        assert client.open("/api/v1/healthcheck/", method=method).status_code == 405
    after = size()
    print(f"/metrics: {before} bytes before 1,000 invented methods, {after} after")
    assert after - before < 200  # counts grow by digits, never by label sets


def test_a_proxied_answer_writes_its_log_line_once_it_is_closed(
    client, reader, proxied, upstream, caplog
):
    with caplog.at_level(logging.INFO, logger="applications_api.requests"):
        response = client.get(
            f"/api/v1/app_proxy/{proxied['id']}/x", headers={**reader, "X-Request-ID": "proxied-1"}
        )
    assert response.status_code == 200
    [record] = [r for r in request_lines(caplog) if r.fields["request_id"] == "proxied-1"]
    assert record.fields["application_id"] == proxied["id"]
    assert record.fields["status"] == 200


def test_gunicorn_removes_the_metrics_directory_it_made(database_url, tmp_path):
    """gunicorn.conf.py makes PROMETHEUS_MULTIPROC_DIR when none is given: a directory of
    its own, gone when gunicorn exits."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, **make_env(database_url), "TMPDIR": str(scratch)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Gunicorn(tmp_path, env)
    try:
        made = [path.name for path in scratch.iterdir()]
        assert any(name.startswith("applications-metrics-") for name in made), made
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 200
    finally:
        server.stop()
    left = [path.name for path in scratch.iterdir()]
    # (gunicorn's own worker files come and go there too; they are not ours to check)
    assert not [name for name in left if name.startswith("applications-metrics-")], left


def test_a_worker_file_still_empty_does_not_fail_the_scrape(database_url, tmp_path):
    """A worker creates its metrics file and sizes it a moment later; a scrape in between
    (a second worker still booting) finds it empty and must still answer."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, **make_env(database_url), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    server = Gunicorn(tmp_path, env)
    try:
        requests.get(f"{server.url}/api/v1/healthcheck/", timeout=5)
        (folder / "counter_4194304.db").touch()  # a pid no worker has
        response = requests.get(f"{server.url}/metrics", timeout=5)
        assert response.status_code == 200, response.text
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert "applications_http_requests" in names, names
    finally:
        server.stop()
