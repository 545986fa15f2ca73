"""What REST clients and Swagger UI rely on: operation ids, examples that validate,
conditional requests, paths with or without their trailing slash, bare 204s."""

import pytest


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_every_operation_has_a_readable_unique_id(spec):
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert {
        "listApplications",
        "createApplication",
        "retrieveApplication",
        "replaceApplication",
        "updateApplication",
        "deleteApplication",
        "listApplicationHistory",
        "healthcheck",
        "proxyGet",
        "proxyPost",
        "proxyGetBase",
    } <= set(ids)


def test_sort_is_a_pattern_not_an_enum(spec):
    (sort,) = [
        parameter
        for parameter in spec["paths"]["/api/v1/applications/"]["get"]["parameters"]
        if parameter.get("name") == "sort"
    ]
    assert "enum" not in sort["schema"] and "pattern" in sort["schema"]


def body_example(spec, schema_name):
    """The request body Swagger UI pre-fills: each property's example."""
    properties = spec["components"]["schemas"][schema_name]["properties"]
    missing = [name for name, prop in properties.items() if "example" not in prop]
    assert not missing, f"{schema_name}: no example for {missing}"
    return {name: prop["example"] for name, prop in properties.items()}


def test_the_body_examples_are_accepted(client, spec, staff):
    created = client.post(
        "/api/v1/applications/", headers=staff, json=body_example(spec, "ApplicationCreate")
    )
    assert created.status_code == 201, created.json
    url = f"/api/v1/applications/{created.json['id']}/"
    replaced = client.put(url, headers=staff, json=body_example(spec, "ApplicationReplace"))
    assert replaced.status_code == 200, replaced.json
    patched = client.patch(url, headers=staff, json=body_example(spec, "ApplicationPatch"))
    assert patched.status_code == 200, patched.json


def test_writes_document_every_status_they_return(spec):
    put = spec["paths"]["/api/v1/applications/{app_id}/"]["put"]
    assert {"200", "400", "401", "403", "404", "412", "413", "415", "503"} <= set(put["responses"])
    assert "428" not in put["responses"]
    if_match = [p for p in put["parameters"] if p.get("name") == "If-Match"]
    assert if_match and not if_match[0]["required"]


def test_retrieve_carries_an_etag_and_if_none_match_is_a_304(client, create, reader):
    url = f"/api/v1/applications/{create(name='Tagged')['id']}/"
    first = client.get(url, headers=reader)
    etag = first.headers["ETag"]
    again = client.get(url, headers={**reader, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b"" and "Content-Type" not in again.headers


def test_a_write_changes_the_etag(client, create, staff, reader):
    url = f"/api/v1/applications/{create(name='Tagged')['id']}/"
    before = client.get(url, headers=reader).headers["ETag"]
    patched = client.patch(url, headers=staff, json={"is_visible": True})
    assert patched.headers["ETag"] != before
    assert client.get(url, headers={**reader, "If-None-Match": before}).status_code == 200
    assert client.get(url, headers=reader).headers["ETag"] == patched.headers["ETag"]


def test_the_list_carries_an_etag_that_follows_its_rows(client, create, staff, reader):
    app = create(name="Listed")
    etag = client.get("/api/v1/applications/", headers=reader).headers["ETag"]
    assert (
        client.get("/api/v1/applications/", headers={**reader, "If-None-Match": etag}).status_code
        == 304
    )
    client.patch(f"/api/v1/applications/{app['id']}/", headers=staff, json={"name": "Renamed"})
    assert (
        client.get("/api/v1/applications/", headers={**reader, "If-None-Match": etag}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "method, body",
    [
        (
            "put",
            {
                "name": "New",
                "application_type": "oms",
                "is_active": True,
                "is_visible": False,
                "is_proxy_available": False,
            },
        ),
        ("patch", {"name": "New"}),
        ("delete", None),
    ],
)
def test_if_match_refuses_a_stale_write_and_allows_a_current_one(
    client, create, staff, method, body
):
    url = f"/api/v1/applications/{create(name='Old')['id']}/"
    stale = client.get(url, headers=staff).headers["ETag"]
    client.patch(url, headers=staff, json={"is_visible": True})
    current = client.get(url, headers=staff).headers["ETag"]
    refused = client.open(
        url, method=method.upper(), json=body, headers={**staff, "If-Match": stale}
    )
    assert refused.status_code == 412
    assert refused.json["code"] == 412
    assert client.get(url, headers=staff).headers["ETag"] == current  # nothing written
    history = client.get(url + "history/", headers=staff).json
    assert len(history) == 2  # the create and the PATCH, not the refused write
    done = client.open(
        url, method=method.upper(), json=body, headers={**staff, "If-Match": current}
    )
    assert done.status_code in (200, 204)


def test_a_write_without_if_match_stays_unconditional(client, create, staff):
    url = f"/api/v1/applications/{create(name='Free')['id']}/"
    assert client.patch(url, headers=staff, json={"name": "Still free"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/applications", "/api/v1/healthcheck"])
def test_a_path_without_its_trailing_slash_is_answered_directly(client, reader, path):
    response = client.get(path, headers=reader)
    assert response.status_code == 200
    assert response.is_json


def test_an_application_without_the_trailing_slash(client, create, reader):
    app = create(name="Slashless")
    response = client.get(f"/api/v1/applications/{app['id']}", headers=reader)
    assert response.status_code == 200 and response.json["name"] == "Slashless"


def test_a_doubled_slash_is_a_json_404(client, reader):
    response = client.get("/api/v1//applications/", headers=reader)
    assert response.status_code == 404 and response.is_json


def test_delete_is_a_bare_204(client, create, staff):
    response = client.delete(f"/api/v1/applications/{create(name='Gone')['id']}/", headers=staff)
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("path", ["/api/v1/applications/", "/api/v1/applications/1/history/"])
def test_every_bad_query_parameter_is_named_in_one_400(client, staff, create, path):
    create(name="Listed")
    response = client.get(f"{path}?limit=0&sort=bogus&page=0&user=x", headers=staff)
    assert response.status_code == 400
    named = set(response.json["errors"]["query"])
    assert {"limit", "page"} <= named
    assert named & {"sort", "user"}  # (each list's own parameter)


def test_page_and_limit_are_documented_once(spec):
    for path in ("/api/v1/applications/", "/api/v1/applications/{app_id}/history/"):
        names = [p.get("name") for p in spec["paths"][path]["get"]["parameters"]]
        assert names.count("page") == 1 and names.count("limit") == 1


def test_head_carries_the_etag_get_does(client, create, reader):
    url = f"/api/v1/applications/{create(name='Headed')['id']}/"
    head = client.head(url, headers=reader)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["ETag"] == client.get(url, headers=reader).headers["ETag"]


def etag_of(client, url, headers):
    return client.get(url, headers=headers).headers["ETag"]


def test_a_304_carries_the_etag_a_200_would(client, create, reader):
    url = f"/api/v1/applications/{create()['id']}/"
    etag = etag_of(client, url, reader)
    for listed in (url, "/api/v1/applications/"):
        current = etag_of(client, listed, reader)
        answer = client.get(listed, headers={**reader, "If-None-Match": current})
        assert answer.status_code == 304
        assert answer.headers["ETag"] == current
    assert etag


@pytest.mark.parametrize(
    "given",
    ["W/{etag}", '"other", {etag}', '"other",W/{etag}', "*"],
    ids=["weak", "in a list", "weak in a list", "star"],
)
def test_if_none_match_compares_weakly(client, create, reader, given):
    """RFC 9110 §13.1.2: W/"x" matches "x" for If-None-Match."""
    url = f"/api/v1/applications/{create()['id']}/"
    etag = etag_of(client, url, reader)
    answer = client.get(url, headers={**reader, "If-None-Match": given.format(etag=etag)})
    assert answer.status_code == 304


def test_if_none_match_of_another_version_is_a_200(client, create, reader):
    url = f"/api/v1/applications/{create()['id']}/"
    answer = client.get(url, headers={**reader, "If-None-Match": '"other", W/"more"'})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "given, status",
    [("W/{etag}", 412), ('"other", {etag}', 200), ("*", 200), ('"other"', 412)],
    ids=["weak is no match", "in a list", "star", "another"],
)
def test_if_match_compares_strongly(client, create, staff, given, status):
    """RFC 9110 §13.1.1: If-Match takes the strong comparison; * is any version."""
    url = f"/api/v1/applications/{create()['id']}/"
    etag = etag_of(client, url, staff)
    answer = client.patch(
        url, json={"is_visible": True}, headers={**staff, "If-Match": given.format(etag=etag)}
    )
    assert answer.status_code == status
    if status == 412:
        assert "has changed since the ETag you sent" in answer.json["message"]
        assert etag_of(client, url, staff) == etag  # nothing written


@pytest.mark.parametrize("given", ["*", "{etag}", "W/{etag}"])
def test_a_write_whose_if_none_match_names_the_current_version_is_refused(
    client, create, staff, given
):
    url = f"/api/v1/applications/{create()['id']}/"
    etag = etag_of(client, url, staff)
    answer = client.patch(
        url, json={"is_visible": True}, headers={**staff, "If-None-Match": given.format(etag=etag)}
    )
    assert answer.status_code == 412
    assert etag_of(client, url, staff) == etag
    allowed = client.patch(
        url, json={"is_visible": True}, headers={**staff, "If-None-Match": '"x"'}
    )
    assert allowed.status_code == 200
