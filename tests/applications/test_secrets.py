"""Write-only secrets, tried as a reader who wants them and as a client who sends back
what it read (issue: what a hostile peer found)."""

import json

import pytest

from tests.applications.test_history import URL, history, stored_config

SECRET = "s3cret-value-123"

# Key names the usual libraries and services use for secrets, spelled every usual way.
SECRET_KEYS = [
    "password",
    "db_password",
    "passwd",
    "passphrase",
    "apiKey",
    "api-key",
    "API_KEY",
    "Api Key",
    "\uff21\uff30\uff29_\uff2b\uff25\uff39",  # full-width API_KEY
    "privateKey",
    "private-key",
    "access_key",
    "AccessKeyId",
    "aws_secret_access_key",
    "credentials",
    "authorization",
    "clientSecret",
    "refresh_token",
]

CONFIG = {
    "web_url": "https://ext.example/",
    "visible_type": "empty",
    "servers": [
        {"host": "a.example", "password": "pw-a-" + SECRET},
        {"host": "b.example", "password": "pw-b-" + SECRET},
    ],
    "oauth_secret": {"client": "c", "value": "object-" + SECRET},
    "database_url": f"postgresql://shop:dsn-{SECRET}@db.example:5432/shop",
    "nested": {"deeper": [{"apiKey": "nested-" + SECRET}]},
    "plain": "kept",
}


def test_readers_never_see_a_secret_however_it_is_named(client, create, reader):
    config = {key: f"{index}-{SECRET}" for index, key in enumerate(SECRET_KEYS)}
    app_id = create(config=config)["id"]
    answer = client.get(f"{URL}{app_id}/", headers=reader)
    assert SECRET not in answer.get_data(as_text=True)
    assert set(answer.json["config"].values()) == {"********", "empty"}


def test_readers_never_see_a_secret_at_any_depth(client, create, reader):
    app_id = create(config=CONFIG)["id"]
    for answer in (
        client.get(f"{URL}{app_id}/", headers=reader),
        client.get(URL, headers=reader),
    ):
        assert SECRET not in answer.get_data(as_text=True)
    config = client.get(f"{URL}{app_id}/", headers=reader).json["config"]
    assert config["servers"][0] == {"host": "a.example", "password": "********"}
    assert config["oauth_secret"] == "********"
    assert config["database_url"] == "postgresql://shop:********@db.example:5432/shop"
    assert config["nested"] == {"deeper": [{"apiKey": "********"}]}
    assert config["plain"] == "kept"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_sending_back_what_was_read_changes_no_secret(app, client, create, staff, method):
    created = create(config=CONFIG, is_proxy_available=True)
    app_id = created["id"]
    read = client.get(f"{URL}{app_id}/", headers=staff).json
    body = read if method == "PUT" else {"config": read["config"]}
    written = client.open(f"{URL}{app_id}/", method=method, json=body, headers=staff)
    assert written.status_code == 200, written.json
    assert stored_config(app, app_id) == CONFIG
    assert [entry["action"] for entry in history(client, staff, app_id)] == ["create"]


def test_array_elements_keep_their_secrets_when_moved_edited_or_joined(app, client, create, staff):
    app_id = create(config=CONFIG)["id"]
    servers = client.get(f"{URL}{app_id}/", headers=staff).json["config"]["servers"]
    moved = [
        {"host": "new.example", "password": "pw-new"},
        servers[1],  # moved up
        {**servers[0], "host": "a2.example"},  # edited in place, its mask kept
    ]
    moved[2], moved[1] = moved[1], moved[2]
    response = client.patch(f"{URL}{app_id}/", json={"config": {"servers": moved}}, headers=staff)
    assert response.status_code == 200, response.json
    assert stored_config(app, app_id)["servers"] == [
        {"host": "new.example", "password": "pw-new"},
        {"host": "a2.example", "password": "pw-a-" + SECRET},
        {"host": "b.example", "password": "pw-b-" + SECRET},
    ]


def test_a_dsn_keeps_its_password_when_its_host_changes(app, client, create, staff):
    app_id = create(config=CONFIG)["id"]
    dsn = client.get(f"{URL}{app_id}/", headers=staff).json["config"]["database_url"]
    moved = dsn.replace("db.example", "db2.example")
    client.patch(f"{URL}{app_id}/", json={"config": {"database_url": moved}}, headers=staff)
    assert stored_config(app, app_id)["database_url"] == (
        f"postgresql://shop:dsn-{SECRET}@db2.example:5432/shop"
    )


@pytest.mark.parametrize(
    "config",
    [
        {"password": "********"},
        {"servers": [{"host": "c.example", "password": "********"}]},
        {"database_url": "postgresql://shop:********@db.example/shop"},
    ],
    ids=["a key", "an array element", "a DSN"],
)
def test_a_mask_standing_for_nothing_stored_is_refused(app, client, create, staff, config):
    """Never stored as the secret itself: a client copying one application to another, or
    adding an element with a mask, is told to send the value."""
    refused = client.post(
        URL, json={"name": "Copy", "application_type": "extension", "config": config}, headers=staff
    )
    assert refused.status_code == 400
    assert "stands for a stored secret" in json.dumps(refused.json)
    app_id = create(config={"plain": "x"})["id"]
    refused = client.patch(f"{URL}{app_id}/", json={"config": config}, headers=staff)
    assert refused.status_code == 400
    assert stored_config(app, app_id) == {"plain": "x", "visible_type": "empty"}


def test_the_history_says_a_secret_changed_never_its_value(client, create, staff):
    app_id = create(config=CONFIG)["id"]
    changed = {
        "database_url": f"postgresql://shop:other-{SECRET}@db.example:5432/shop",
        "oauth_secret": {"client": "c", "value": "rotated-" + SECRET},
        "servers": [{"host": "a.example", "password": "rotated-" + SECRET}],
    }
    client.patch(f"{URL}{app_id}/", json={"config": changed}, headers=staff)
    entries = history(client, staff, app_id)
    assert SECRET not in json.dumps(entries)
    changes = {change["field"]: change for change in entries[0]["changes"]}
    assert changes["config.database_url"] == {"field": "config.database_url", "secret": True}
    assert changes["config.oauth_secret"] == {"field": "config.oauth_secret", "secret": True}
    assert changes["config.servers"]["new"] == [{"host": "a.example", "password": "********"}]


def test_a_mask_sent_twice_in_a_dsn_gives_the_password_back_once(app, client, create, staff):
    """Only the URL's own password is the stored one: text after it that reads like a
    mask again (":********@" in its query) is stored as sent, never filled with the
    password (which the reader's masked answer would then show in clear)."""
    app_id = create(config=CONFIG)["id"]
    dsn = client.get(f"{URL}{app_id}/", headers=staff).json["config"]["database_url"]
    edited = f"{dsn}?note=x:********@y"
    patched = client.patch(
        f"{URL}{app_id}/", json={"config": {"database_url": edited}}, headers=staff
    )
    assert patched.status_code == 200
    assert stored_config(app, app_id)["database_url"] == (
        f"postgresql://shop:dsn-{SECRET}@db.example:5432/shop?note=x:********@y"
    )
    assert SECRET not in client.get(f"{URL}{app_id}/", headers=staff).get_data(as_text=True)
