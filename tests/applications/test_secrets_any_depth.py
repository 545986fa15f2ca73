"""Secrets wherever a config may hold them: in objects, in arrays, in arrays of arrays, as
objects and arrays themselves. Every answer a reader (and staff) gets is masked, and the
history never holds one in clear: read back through the API and straight from its table."""

import json

import pytest
from sqlalchemy import text

from applications_api.database import db
from tests.applications.test_history import URL, history, stored_config

SECRET = "hunter2-in-clear"

# (config, where the secret is): one shape each, written as a client would send it.
SHAPES = {
    "a list of objects": {"accounts": [{"user": "a", "password": "1-" + SECRET}]},
    "the second element": {"accounts": [{"user": "a"}, {"user": "b", "password": "2-" + SECRET}]},
    "a list in a list": {"matrix": [[{"token": "3-" + SECRET}]]},
    "a list in an object in a list": {"a": [{"b": [{"client_secret": "4-" + SECRET}]}]},
    "an object-valued secret": {"oauth_secret": {"id": "c", "value": "5-" + SECRET}},
    "an object-valued secret in a list": {"apps": [{"credentials": {"k": "6-" + SECRET}}]},
    "a list-valued secret": {"api_keys": ["7-" + SECRET, "8-" + SECRET]},
    "a list-valued secret, deep": {"x": {"y": {"passwords": [["9-" + SECRET]]}}},
    "a DSN in a list": {"databases": [f"postgresql://u:10-{SECRET}@db.example/x"]},
    "a DSN in a list of objects": {"dbs": [{"url": f"mysql://u:11-{SECRET}@db.example/x"}]},
    "a secret next to plain values": {"plain": 1, "list": [1, "two", {"apiKey": "12-" + SECRET}]},
}


def clear_in(value):
    return SECRET in json.dumps(value)


def history_rows(app, app_id):
    """The history entries as stored, every column as text."""
    with app.app_context():
        rows = db.session.execute(
            text("SELECT * FROM application_changes WHERE application_id = :id"), {"id": app_id}
        ).all()
    return [str(tuple(row)) for row in rows]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_answer_masks_a_secret_at_any_depth(client, staff, reader, shape):
    config = SHAPES[shape]
    created = client.post(
        URL, json={"name": "S", "application_type": "oms", "config": config}, headers=staff
    )
    assert created.status_code == 201
    app_id = created.json["id"]
    answers = [
        created,
        client.patch(f"{URL}{app_id}/", json={"config": {"plain_extra": 1}}, headers=staff),
    ]
    for who in (reader, staff):
        answers += [client.get(f"{URL}{app_id}/", headers=who), client.get(URL, headers=who)]
    for answer in answers:
        assert answer.status_code in (200, 201)
        assert SECRET not in answer.get_data(as_text=True), answer.request.method
    assert "********" in json.dumps(client.get(f"{URL}{app_id}/", headers=reader).json)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_history_never_holds_a_secret_in_clear(app, client, staff, shape):
    """Created with it, rotated (PATCH and PUT), removed: neither the history the API
    answers nor the table it is stored in holds the value."""
    config = SHAPES[shape]
    app_id = client.post(
        URL, json={"name": "S", "application_type": "oms", "config": config}, headers=staff
    ).json["id"]
    rotated = json.loads(json.dumps(config).replace(SECRET, "rotated-" + SECRET))
    patched = client.patch(f"{URL}{app_id}/", json={"config": rotated}, headers=staff)
    assert patched.status_code == 200, patched.json
    body = {
        "name": "S",
        "application_type": "oms",
        "is_active": True,
        "is_visible": True,
        "is_proxy_available": False,
        "config": config,
    }
    assert client.put(f"{URL}{app_id}/", json=body, headers=staff).status_code == 200
    assert (
        client.put(
            f"{URL}{app_id}/", json={**body, "config": {"plain": "only"}}, headers=staff
        ).status_code
        == 200
    )
    assert stored_config(app, app_id) == {"plain": "only", "visible_type": "empty"}
    entries = history(client, staff, app_id)
    assert [entry["action"] for entry in entries] == ["replace", "replace", "update", "create"]
    assert not clear_in(entries), entries
    rows = history_rows(app, app_id)
    assert len(rows) == 4
    assert not any(SECRET in row for row in rows), rows


@pytest.mark.parametrize("shape", SHAPES)
def test_a_change_to_a_secret_alone_is_recorded_as_a_secret_change(client, staff, shape):
    config = SHAPES[shape]
    app_id = client.post(
        URL, json={"name": "S", "application_type": "oms", "config": config}, headers=staff
    ).json["id"]
    rotated = json.loads(json.dumps(config).replace(SECRET, "rotated-" + SECRET))
    client.patch(f"{URL}{app_id}/", json={"config": rotated}, headers=staff)
    [change] = history(client, staff, app_id)[0]["changes"]
    # (not the masked value twice, old and new alike: that would say nothing changed)
    assert change == {"field": change["field"], "secret": True}
    assert change["field"].startswith("config.")


def test_elements_that_read_alike_keep_their_own_secrets(app, client, create, staff):
    """Two elements masked alike (only their secrets differ), sent back moved and with
    one more: each keeps its own stored secret, none is given twice."""
    config = {
        "servers": [
            {"host": "same.example", "password": "first-" + SECRET},
            {"host": "same.example", "password": "second-" + SECRET},
            {"host": "other.example", "password": "third-" + SECRET},
        ]
    }
    app_id = create(config=config)["id"]
    read = client.get(f"{URL}{app_id}/", headers=staff).json["config"]["servers"]
    sent = [read[2], read[0], read[1], {"host": "new.example", "password": "fourth"}]
    response = client.patch(f"{URL}{app_id}/", json={"config": {"servers": sent}}, headers=staff)
    assert response.status_code == 200, response.json
    assert stored_config(app, app_id)["servers"] == [
        {"host": "other.example", "password": "third-" + SECRET},
        {"host": "same.example", "password": "first-" + SECRET},
        {"host": "same.example", "password": "second-" + SECRET},
        {"host": "new.example", "password": "fourth"},
    ]


@pytest.mark.parametrize(
    "config, path",
    [
        ({"database_url": "postgresql://shop:********@db.example/shop"}, "config.database_url"),
        ({"a": [{"b": {"password": "********"}}]}, "config.a[0].b.password"),
    ],
)
def test_a_mask_standing_for_nothing_is_refused_naming_where(client, staff, config, path):
    refused = client.post(
        URL, json={"name": "Copy", "application_type": "oms", "config": config}, headers=staff
    )
    assert refused.status_code == 400
    assert refused.json["errors"]["json"]["config"] == [
        f'{path}: "********" stands for a stored secret, and none is stored there; '
        "send the value itself."
    ]
