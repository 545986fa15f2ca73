"""Every field rule of the contract: the bad value is a 400 naming the field, and
nothing is written."""

from typing import Any

import pytest

URL = "/api/v1/applications/"
VALID = {"name": "Shop front", "application_type": "extension"}
FULL_PUT = {**VALID, "is_active": True, "is_visible": False, "is_proxy_available": False}

BAD_FIELDS = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": None}, "name"),
    ({"name": 12}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "\u200b\u200b"}, "name"),  # zero-width spaces
    ({"name": "\u3000\u3000"}, "name"),  # ideographic spaces
    ({"name": "\u3164"}, "name"),  # a Hangul filler, drawn as nothing
    ({"name": "\u2060\ufeff\u00a0"}, "name"),  # word joiner, BOM, no-break space
    ({"name": "Shop\u202egnp.exe"}, "name"),  # right-to-left override
    ({"name": "Shop\u2066front"}, "name"),  # a bidirectional isolate
    ({"application_type": "nope"}, "application_type"),
    ({"application_type": "EXTENSION"}, "application_type"),
    ({"application_type": None}, "application_type"),
    ({"config": "not an object"}, "config"),
    ({"config": [1, 2]}, "config"),
    ({"config": {"web_url": "ftp://files.example.com/"}}, "config"),
    ({"config": {"web_url": "/relative/path"}}, "config"),
    ({"config": {"web_url": "https://"}}, "config"),
    ({"config": {"web_url": "http://exa mple.com/"}}, "config"),
    ({"config": {"web_url": "http://example.com:99999/"}}, "config"),
    ({"config": {"web_url": 42}}, "config"),
    ({"config": {"web_url": "https://user:pw@ext.example.com/base/"}}, "config"),
    ({"config": {"web_url": "https://token@ext.example.com/"}}, "config"),
    ({"is_active": "perhaps"}, "is_active"),
    ({"is_active": None}, "is_active"),
    ({"is_visible": []}, "is_visible"),
    ({"is_proxy_available": {}}, "is_proxy_available"),
    ({"remote_object_id": 2**63}, "remote_object_id"),
    ({"remote_object_id": -(2**63) - 1}, "remote_object_id"),
    ({"remote_object_id": "12"}, "remote_object_id"),
    ({"remote_object_id": 1.5}, "remote_object_id"),
    ({"related_application_id": "r" * 256}, "related_application_id"),
    ({"related_application_id": 7}, "related_application_id"),
    ({"nmae": "typo"}, "nmae"),
]


def assert_names(response, field):
    assert response.status_code == 400, response.json
    assert response.json["code"] == 400
    assert response.json["status"] == "Bad Request"
    assert field in response.json["errors"]["json"], response.json


def count(client, staff):
    return len(client.get(URL, query_string={"limit": 1000}, headers=staff).json)


@pytest.mark.parametrize("change, field", BAD_FIELDS)
def test_create_rejects(client, staff, change, field):
    assert_names(client.post(URL, json={**VALID, **change}, headers=staff), field)
    assert count(client, staff) == 0


@pytest.mark.parametrize("change, field", BAD_FIELDS)
def test_put_rejects(create, client, staff, change, field):
    created = create()
    response = client.put(f"{URL}{created['id']}/", json={**FULL_PUT, **change}, headers=staff)
    assert_names(response, field)
    assert client.get(f"{URL}{created['id']}/", headers=staff).json == created


@pytest.mark.parametrize("change, field", BAD_FIELDS)
def test_patch_rejects(create, client, staff, change, field):
    created = create()
    response = client.patch(f"{URL}{created['id']}/", json=change, headers=staff)
    assert_names(response, field)
    assert client.get(f"{URL}{created['id']}/", headers=staff).json == created


@pytest.mark.parametrize("field", ["name", "application_type"])
def test_create_requires(client, staff, field):
    body = {key: value for key, value in VALID.items() if key != field}
    assert_names(client.post(URL, json=body, headers=staff), field)


def test_config_round_trips_any_json_string(create):
    config = {"text": "nul\x00 and \u2603", "key\x00": [1, 2.5, None, True]}
    assert create(config=config)["config"] == {**config, "visible_type": "empty"}


def test_limits_are_inclusive(create):
    body = create(
        name="n" * 100,
        related_application_id="r" * 255,
        remote_object_id=-(2**63),
    )
    assert len(body["name"]) == 100
    assert body["remote_object_id"] == -(2**63)


def test_web_url_null_is_a_removal_only_in_patch(client, staff):
    response = client.post(URL, json={**VALID, "config": {"web_url": None}}, headers=staff)
    assert_names(response, "config")


def test_config_nested_too_deeply(client, staff):
    config: dict[str, Any] = {}
    current = config
    for _ in range(40):
        current["a"] = {}
        current = current["a"]
    assert_names(client.post(URL, json={**VALID, "config": config}, headers=staff), "config")


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "a", "application_type": "oms", "config": {"x": NaN}}',
        '{"name": "a", "application_type": "oms", "config": {"x": Infinity}}',
    ],
)
def test_non_finite_numbers_in_config(client, staff, raw):
    response = client.post(URL, data=raw, content_type="application/json", headers=staff)
    assert_names(response, "config")


@pytest.mark.parametrize(
    "raw", ["{bad json", '{"name": "a",}', "", "\xff\xfe", "[" * 100000, "null", "[]", '"s"']
)
def test_bodies_that_are_not_a_json_object_are_400(client, staff, raw):
    response = client.post(URL, data=raw, content_type="application/json", headers=staff)
    assert response.status_code == 400
    assert "json" in response.json["errors"]
    assert count(client, staff) == 0


def test_a_body_that_is_not_json_is_415(client, staff):
    response = client.post(URL, data="name=a", content_type="text/plain", headers=staff)
    assert response.status_code == 415
    assert response.json["code"] == 415


def test_a_body_over_the_size_limit_is_413(client, staff):
    body = '{"name": "a", "application_type": "oms", "config": {"x": "' + "y" * (1 << 20) + '"}}'
    response = client.post(URL, data=body, content_type="application/json", headers=staff)
    assert response.status_code == 413
    assert response.json["code"] == 413
    assert count(client, staff) == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    "raw, named",
    [
        ('{"name": "bad\\ud800x", "application_type": "oms"}', "valid Unicode"),
        ('{"name": "a", "application_type": "oms", "config": {"k": "\\udfff"}}', "valid Unicode"),
        (
            '{"name": "a", "application_type": "oms", "remote_object_id": ' + "9" * 5000 + "}",
            "4,300 digits",
        ),
    ],
)
def test_what_no_database_can_store_is_400_before_any_write(
    client, staff, create, method, raw, named
):
    existing = create(name="kept")
    url = URL if method == "POST" else f"{URL}{existing['id']}/"
    response = client.open(
        url, method=method, data=raw, content_type="application/json", headers=staff
    )
    assert response.status_code == 400
    assert named in response.json["errors"]["json"][0]
    assert count(client, staff) == 1
    assert client.get(f"{URL}{existing['id']}/", headers=staff).json["name"] == "kept"


def test_a_surrogate_pair_is_a_character_like_any_other(create):
    assert (
        create(name="smile \ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16"))["name"]
        == "smile 😀"
    )


@pytest.mark.parametrize("value, stored", [(7, 7), (7.0, 7), (-396.0, -396)])
def test_remote_object_id_takes_whole_numbers_as_json_schema_counts_them(create, value, stored):
    assert create(name="Whole", remote_object_id=value)["remote_object_id"] == stored


@pytest.mark.parametrize("value", [7.5, "7", True])
def test_remote_object_id_refuses_what_is_not_a_whole_number(client, staff, value):
    response = client.post(
        "/api/v1/applications/",
        headers=staff,
        json={"name": "Whole", "application_type": "oms", "remote_object_id": value},
    )
    assert response.status_code == 400
    assert "remote_object_id" in response.json["errors"]["json"]


def test_credentials_in_web_url_are_refused_saying_where_they_belong(client, staff):
    body = {**VALID, "config": {"web_url": "https://user:s3cretpw@ext.example.com/base/"}}
    response = client.post(URL, json=body, headers=staff)
    assert response.status_code == 400
    (message,) = response.json["errors"]["json"]["config"]["web_url"]
    assert "credentials" in message and "write-only config key" in message
    assert "s3cretpw" not in response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["Ünïcode shop", "店", "a b", "x\u200by"])
def test_names_that_show_as_text_are_taken(create, name):
    assert create(name=name)["name"] == name
