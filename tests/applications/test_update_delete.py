URL = "/api/v1/applications/"


def item(app_id):
    return f"{URL}{app_id}/"


def test_put_replaces_fields_and_keeps_left_out_optional_ones(create, client, staff):
    created = create(
        remote_object_id=5,
        related_application_id="rel",
        config={"web_url": "https://a.example/", "x": 1},
    )
    response = client.put(
        item(created["id"]),
        json={
            "name": "Renamed",
            "application_type": "oms",
            "is_active": False,
            "is_visible": True,
            "is_proxy_available": True,
        },
        headers=staff,
    )
    assert response.status_code == 200
    body = response.json
    assert (body["name"], body["application_type"]) == ("Renamed", "oms")
    assert (body["is_active"], body["is_visible"], body["is_proxy_available"]) == (
        False,
        True,
        True,
    )
    assert body["remote_object_id"] == 5
    assert body["related_application_id"] == "rel"
    assert body["config"] == created["config"]
    assert body["modified_date"] > created["modified_date"]
    assert body["created_date"] == created["created_date"]


def test_put_config_replaces_the_stored_one(create, client, staff):
    created = create(config={"web_url": "https://a.example/", "x": 1})
    response = client.put(
        item(created["id"]),
        json={
            "name": "n",
            "application_type": "oms",
            "is_active": True,
            "is_visible": False,
            "is_proxy_available": False,
            "config": {"y": 2},
        },
        headers=staff,
    )
    assert response.json["config"] == {"y": 2, "visible_type": "empty"}


def test_put_requires_the_five_fields(create, client, staff):
    created = create()
    response = client.put(item(created["id"]), json={"name": "n"}, headers=staff)
    assert response.status_code == 400
    missing = response.json["errors"]["json"]
    assert set(missing) == {"application_type", "is_active", "is_visible", "is_proxy_available"}
    assert client.get(item(created["id"]), headers=staff).json == created


def test_patch_merges_config(create, client, staff):
    created = create(config={"web_url": "https://a.example/", "nested": {"a": 1, "b": 2}})
    response = client.patch(
        item(created["id"]),
        json={"config": {"visible_type": "full_page", "nested": {"b": None, "c": 3}}},
        headers=staff,
    )
    assert response.status_code == 200
    assert response.json["config"] == {
        "web_url": "https://a.example/",
        "visible_type": "full_page",
        "nested": {"a": 1, "c": 3},
    }


def test_patch_null_removes_a_config_key(create, client, staff):
    created = create(config={"web_url": "https://a.example/"})
    response = client.patch(item(created["id"]), json={"config": {"web_url": None}}, headers=staff)
    assert response.json["config"] == {"visible_type": "empty"}


def test_patch_changes_only_given_fields(create, client, staff):
    created = create(is_visible=True)
    response = client.patch(item(created["id"]), json={"name": "Other"}, headers=staff)
    assert response.status_code == 200
    assert response.json == {
        **created,
        "name": "Other",
        "modified_date": response.json["modified_date"],
    }
    assert response.json["modified_date"] > created["modified_date"]


def test_empty_patch_still_touches_modified_date(create, client, staff):
    created = create()
    response = client.patch(item(created["id"]), json={}, headers=staff)
    assert response.status_code == 200
    assert response.json["modified_date"] > created["modified_date"]


def test_delete_is_a_soft_delete(create, client, staff):
    created = create()
    response = client.delete(item(created["id"]), headers=staff)
    assert response.status_code == 204
    assert response.data == b""
    after = client.get(item(created["id"]), headers=staff).json
    assert after["is_active"] is False
    assert after["modified_date"] > created["modified_date"]
    listed = client.get(URL, query_string={"is_active": "false"}, headers=staff).json
    assert [row["id"] for row in listed] == [created["id"]]


def test_delete_again_is_204_and_touches_modified_date(create, client, staff):
    created = create()
    client.delete(item(created["id"]), headers=staff)
    first = client.get(item(created["id"]), headers=staff).json["modified_date"]
    assert client.delete(item(created["id"]), headers=staff).status_code == 204
    assert client.get(item(created["id"]), headers=staff).json["modified_date"] > first


def test_writes_to_a_missing_application_are_404(client, staff):
    body = {
        "name": "n",
        "application_type": "oms",
        "is_active": True,
        "is_visible": False,
        "is_proxy_available": False,
    }
    assert client.put(item(999), json=body, headers=staff).status_code == 404
    assert client.patch(item(999), json={}, headers=staff).status_code == 404
    assert client.delete(item(999), headers=staff).status_code == 404
