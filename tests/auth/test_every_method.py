"""Default-deny for every method a protected route answers, OPTIONS and HEAD included:
a method that skipped authentication would answer (an OPTIONS' Allow, a HEAD's status)
or, on app_proxy, reach a backend without a caller."""

import pytest

from applications_api.auth.authentication import PUBLIC_ENDPOINTS

METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def protected_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = rule.rule.replace("<id:app_id>", "1").replace("<path:path>", "x")
        for method in sorted(rule.methods):
            yield url, method


def test_there_are_protected_routes_answering_options_and_head(app):
    methods = {method for _, method in protected_routes(app)}
    assert {"OPTIONS", "HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"} <= methods


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Token wrong"}],
    ids=["none", "empty", "wrong"],
)
def test_every_method_of_every_protected_route_is_401_without_a_valid_token(app, client, headers):
    refused = []
    for url, method in protected_routes(app):
        response = client.open(url, method=method, headers=headers)
        if response.status_code != 401 or response.headers.get("WWW-Authenticate") != "Token":
            refused.append((method, url, response.status_code))
    assert refused == []


@pytest.mark.parametrize("method", METHODS)
def test_app_proxy_without_a_token_reaches_no_backend(client, proxied, upstream, method):
    response = client.open(f"/api/v1/app_proxy/{proxied['id']}/x", method=method)
    assert response.status_code == 401
    assert upstream.received == []


@pytest.mark.parametrize("method", METHODS)
def test_a_reader_may_not_write_applications_by_any_method(client, reader, create, method):
    """Only GET, HEAD and OPTIONS are reads; every other method is a staff write, on the
    list and on an application alike."""
    item = f"/api/v1/applications/{create()['id']}/"
    for url in ("/api/v1/applications/", item):
        response = client.open(url, method=method, headers=reader, json={"name": "x"})
        if method in ("GET", "HEAD", "OPTIONS"):
            assert response.status_code == 200, (url, response.status_code)
        elif (url == item) == (method != "POST"):  # where the method is a write
            assert response.status_code == 403, (url, response.status_code)
            assert response.json["message"] == (
                "Only staff users may create, update or delete applications."
            )
        else:
            assert response.status_code == 405, (url, response.status_code)
