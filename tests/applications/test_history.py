"""Change history and write-only secrets."""

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select, text

from applications_api.applications.models import Application
from applications_api.database import db
from tests.support.live_server import LiveServer

URL = "/api/v1/applications/"
SECRET = "s3cret-value-123"


def history(client, staff, app_id, **params):
    response = client.get(f"{URL}{app_id}/history/", query_string=params, headers=staff)
    assert response.status_code == 200, response.json
    return response.json


def stored_config(app, app_id):
    with app.app_context():
        return db.session.scalar(select(Application.config).where(Application.id == app_id))


def test_each_write_records_who_when_and_the_exact_diff(client, staff, create):
    created = create(name="Hist", config={"web_url": "https://a.example/", "n": 1})
    app_id = created["id"]
    client.patch(
        f"{URL}{app_id}/",
        json={"config": {"n": 2, "web_url": None}},
        headers={**staff, "X-Request-ID": "patch-1"},
    )
    client.put(
        f"{URL}{app_id}/",
        headers=staff,
        json={
            "name": "Hist 2",
            "application_type": "oms",
            "is_active": True,
            "is_visible": True,
            "is_proxy_available": False,
            "config": {"n": 2},
        },
    )
    client.delete(f"{URL}{app_id}/", headers=staff)
    entries = history(client, staff, app_id)
    assert [e["action"] for e in entries] == ["delete", "replace", "update", "create"]
    delete, replace, update, create_entry = entries
    assert delete["changes"] == [{"field": "is_active", "old": True, "new": False}]
    assert replace["changes"] == [
        {"field": "name", "old": "Hist", "new": "Hist 2"},
        {"field": "application_type", "old": "extension", "new": "oms"},
        {"field": "is_visible", "old": False, "new": True},
    ]
    assert update["changes"] == [
        {"field": "config.web_url", "old": "https://a.example/", "new": None},
        {"field": "config.n", "old": 1, "new": 2},
    ]
    assert update["request_id"] == "patch-1"
    assert {"field": "name", "old": None, "new": "Hist"} in create_entry["changes"]
    assert {"field": "config.visible_type", "old": None, "new": "empty"} in create_entry["changes"]
    assert all(e["user_id"] == created["created_by"] for e in entries)
    assert all(e["application_id"] == app_id for e in entries)


def test_a_failed_write_leaves_no_entry(client, staff, create):
    app_id = create()["id"]
    bad = client.patch(f"{URL}{app_id}/", json={"name": ""}, headers=staff)
    assert bad.status_code == 400
    missing = client.patch(f"{URL}424242/", json={"name": "x"}, headers=staff)
    assert missing.status_code == 404
    assert [e["action"] for e in history(client, staff, app_id)] == ["create"]


def test_history_is_staff_only_paginated_and_filtered(client, staff, reader, create):
    app_id = create()["id"]
    for n in range(4):
        client.patch(f"{URL}{app_id}/", json={"config": {"n": n}}, headers=staff)
    assert client.get(f"{URL}{app_id}/history/", headers=reader).status_code == 403
    assert client.get(f"{URL}424242/history/", headers=staff).status_code == 404
    page = client.get(f"{URL}{app_id}/history/?limit=2&page=1", headers=staff)
    assert len(page.json) == 2
    assert json.loads(page.headers["X-Pagination"])["total"] == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert history(client, staff, app_id, since=future) == []
    assert len(history(client, staff, app_id, user=page.json[0]["user_id"])) == 5
    assert history(client, staff, app_id, user=2**31 - 1) == []
    naive = client.get(f"{URL}{app_id}/history/?since=2026-01-01T00:00:00", headers=staff)
    assert naive.status_code == 400 and "since" in naive.json["errors"]["query"]


def test_a_history_page_is_one_statement_and_a_missing_application_a_404(
    client, staff, create, count_statements
):
    app_id = create()["id"]
    history(client, staff, app_id)  # the token's first use is recorded (last_used) once
    with count_statements() as counter:
        assert len(history(client, staff, app_id)) == 1
    # token lookup; the page with its total (an entry says the application exists)
    assert len(counter.statements) == 2, counter.statements
    with count_statements() as counter:
        missing = client.get(f"{URL}424242/history/", headers=staff)
    assert missing.status_code == 404
    assert missing.json["message"] == "Application 424242 does not exist."
    # token lookup; the empty page; the application
    assert len(counter.statements) == 3, counter.statements


def test_concurrent_patches_leave_entries_whose_diffs_chain(app, create, staff):
    app_id = create(config={"n": -1})["id"]
    barrier = threading.Barrier(20)

    def patch(n, base):
        barrier.wait()
        requests.patch(
            f"{base}{URL}{app_id}/", json={"config": {"n": n}}, headers=staff, timeout=30
        ).raise_for_status()

    with LiveServer(app) as server:
        threads = [threading.Thread(target=patch, args=(n, server.url)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with app.test_client() as client:
        entries = list(reversed(history(client, staff, app_id, limit=100)))[1:]
    assert len(entries) == 20
    values = [entry["changes"][0] for entry in entries]
    assert values[0]["old"] == -1
    for earlier, later in zip(values, values[1:], strict=False):
        assert later["old"] == earlier["new"]
    assert sorted(value["new"] for value in values) == list(range(20))


def test_secrets_are_written_never_read(app, client, staff, create, caplog):
    with caplog.at_level(logging.DEBUG):
        created = create(
            config={
                "web_url": "https://a.example/",
                "api_key": SECRET,
                "db": {"Admin_Password": SECRET, "host": "db"},
            }
        )
        app_id = created["id"]
        assert created["config"]["api_key"] == "********"
        assert created["config"]["db"] == {"Admin_Password": "********", "host": "db"}
        read = client.get(f"{URL}{app_id}/", headers=staff).json
        listed = client.get(URL, headers=staff).json
        # a client sends back what it read, changing something else: the secrets stay
        sent_back = {**read["config"], "web_url": "https://b.example/"}
        assert (
            client.patch(f"{URL}{app_id}/", json={"config": sent_back}, headers=staff).status_code
            == 200
        )
        client.put(
            f"{URL}{app_id}/",
            headers=staff,
            json={
                "name": "Shop front",
                "application_type": "extension",
                "is_active": True,
                "is_visible": False,
                "is_proxy_available": True,
                "config": sent_back,
            },
        )
        client.patch(
            f"{URL}{app_id}/", json={"config": {"api_key": "rotated-" + SECRET}}, headers=staff
        )
        entries = history(client, staff, app_id)
    config = stored_config(app, app_id)
    assert config["db"]["Admin_Password"] == SECRET
    assert config["api_key"] == "rotated-" + SECRET
    assert {"field": "config.api_key", "secret": True} in entries[0]["changes"]
    everything = json.dumps([created, read, listed, entries]) + caplog.text
    assert SECRET not in everything


def test_an_empty_setting_turns_masking_off(make_app, database_url, create, staff):
    plain = make_app(database_url, APPLICATION_SECRET_KEYS="")
    app_id = create(config={"api_key": SECRET})["id"]
    answer = plain.test_client().get(f"{URL}{app_id}/", headers=staff).json
    assert answer["config"]["api_key"] == SECRET


def test_web_url_and_proxy_changes_are_logged_at_warning(client, staff, create, caplog):
    def warned(write):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="applications_api.applications.history"):
            write()
        mine = [r for r in caplog.records if r.name == "applications_api.applications.history"]
        return [r.getMessage() for r in mine if r.levelno == logging.WARNING]

    created = {}

    def make():
        created.update(create(config={"web_url": "https://a.example/"}))

    first = warned(make)
    app_id, user = created["id"], created["created_by"]
    assert first == [
        f"application {app_id}: config.web_url changed from None to"
        f" 'https://a.example/' (user {user})"
    ]
    # a new application that points app_proxy nowhere is not worth a warning
    assert warned(lambda: create(is_proxy_available=False)) == []

    def patch(body):
        return lambda: client.patch(f"{URL}{app_id}/", headers=staff, json=body)

    assert warned(patch({"name": "Renamed", "config": {"web_url": "https://a.example/"}})) == []
    both = warned(patch({"config": {"web_url": "https://b.example/"}, "is_proxy_available": True}))
    assert sorted(both) == [
        f"application {app_id}: config.web_url changed from 'https://a.example/' to"
        f" 'https://b.example/' (user {user})",
        f"application {app_id}: is_proxy_available changed from False to True (user {user})",
    ]
    # turning the proxy off is a change of where identities go too
    assert warned(patch({"is_proxy_available": False})) == [
        f"application {app_id}: is_proxy_available changed from True to False (user {user})"
    ]


@pytest.mark.parametrize("days, left", [(0, 0), (1, 1)])
def test_prune_history(app, runner, client, staff, create, days, left):
    app_id = create()["id"]
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    with app.app_context():  # one entry two days old, one new
        db.session.execute(
            text("UPDATE application_changes SET created_date = :old"), {"old": two_days_ago}
        )
        db.session.commit()
    client.patch(f"{URL}{app_id}/", json={"name": "new"}, headers=staff)
    result = runner.invoke(args=["prune-history", "--older-than", str(days)])
    assert result.exit_code == 0, result.output
    assert len(history(client, staff, app_id)) == left


@pytest.mark.parametrize(
    "method, body",
    [("PATCH", {}), ("PATCH", {"name": "Shop front"}), ("PATCH", {"config": {}}), ("DELETE", None)],
    ids=["empty patch", "same name", "empty config patch", "delete again"],
)
def test_a_write_that_changes_nothing_records_nothing(client, staff, create, method, body):
    app_id = create(name="Shop front")["id"]
    if method == "DELETE":
        client.delete(f"{URL}{app_id}/", headers=staff)
    before = history(client, staff, app_id)
    response = client.open(f"{URL}{app_id}/", method=method, json=body, headers=staff)
    assert response.status_code in (200, 204)
    assert history(client, staff, app_id) == before
