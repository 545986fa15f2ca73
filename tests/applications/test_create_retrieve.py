from datetime import datetime, timedelta

from applications_api.applications.models import APPLICATION_TYPES

URL = "/api/v1/applications/"


def test_create_returns_201_the_object_and_location(client, staff):
    response = client.post(
        URL,
        json={
            "name": "Shop front",
            "application_type": "commerce",
            "config": {"web_url": "https://shop.example.com/app"},
            "remote_object_id": 2**63 - 1,
            "related_application_id": "Ext-42",
        },
        headers=staff,
    )
    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"] == f"{URL}{body['id']}/"
    assert body["name"] == "Shop front"
    assert body["application_type"] == "commerce"
    assert body["config"] == {"web_url": "https://shop.example.com/app", "visible_type": "empty"}
    assert body["remote_object_id"] == 2**63 - 1
    assert body["related_application_id"] == "Ext-42"
    created = datetime.fromisoformat(body["created_date"])
    assert created.utcoffset() == timedelta(0)
    assert body["modified_date"] == body["created_date"]


def test_create_defaults(create, client, staff):
    body = create()
    assert body["config"] == {"visible_type": "empty"}
    assert body["is_active"] is True
    assert body["is_visible"] is False
    assert body["is_proxy_available"] is False
    assert body["remote_object_id"] is None
    assert body["related_application_id"] is None


def test_created_by_is_the_authenticated_user(client, staff, app):
    first = client.post(URL, json={"name": "a", "application_type": "oms"}, headers=staff)
    assert isinstance(first.json["created_by"], int)
    # created_by in the body is read-only and ignored
    second = client.post(
        URL, json={"name": "b", "application_type": "oms", "created_by": 999}, headers=staff
    )
    assert second.json["created_by"] == first.json["created_by"]


def test_read_only_fields_in_the_body_are_accepted_and_ignored(client, staff):
    response = client.post(
        URL,
        json={
            "id": 777,
            "name": "a",
            "application_type": "oms",
            "created_date": "2000-01-01T00:00:00Z",
            "modified_date": "garbage",
        },
        headers=staff,
    )
    assert response.status_code == 201
    assert response.json["id"] != 777
    assert not response.json["created_date"].startswith("2000")


def test_visible_type_given_is_kept(create):
    assert create(config={"visible_type": "full_page"})["config"] == {"visible_type": "full_page"}


def test_null_config_is_stored_with_default_visible_type(create):
    assert create(config=None)["config"] == {"visible_type": "empty"}


def test_every_application_type_is_accepted(create):
    for application_type in APPLICATION_TYPES:
        assert create(application_type=application_type)["application_type"] == application_type


def test_retrieve(create, client, reader):
    created = create()
    response = client.get(f"{URL}{created['id']}/", headers=reader)
    assert response.status_code == 200
    assert response.json == created


def test_retrieve_missing_is_404_json(client, reader):
    for app_id in (12345, 2**31, 10**30):
        response = client.get(f"{URL}{app_id}/", headers=reader)
        assert response.status_code == 404
        assert response.json["code"] == 404
        assert response.json["status"] == "Not Found"
        assert str(app_id) in response.json["message"]


def test_an_id_not_written_plainly_matches_no_route(create, client, reader):
    app_id = create()["id"]
    for spelling in (f"0{app_id}", f"+{app_id}", f"{app_id}.0", "0"):
        response = client.get(f"{URL}{spelling}/", headers=reader)
        assert response.status_code == 404, spelling
        assert response.json["code"] == 404
    assert client.get(f"{URL}{app_id}/", headers=reader).status_code == 200


def test_non_numeric_id_is_404(client, reader):
    assert client.get(f"{URL}abc/", headers=reader).status_code == 404
