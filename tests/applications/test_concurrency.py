import sqlite3
import threading
import time
from typing import Any

import psycopg
import pytest
import requests

from applications_api.applications.service import WRITERS_OF
from tests.support.app import ON_POSTGRESQL, direct_url, postgresql_only, scalar
from tests.support.live_server import LiveServer

WRITERS = 20


def test_concurrent_patches_adding_config_keys_all_survive(app, create, staff):
    created = create(config={"web_url": "https://a.example/"})
    barrier = threading.Barrier(WRITERS)
    statuses = []

    def add_key(n, base_url):
        with requests.Session() as session:
            barrier.wait()
            response = session.patch(
                f"{base_url}/api/v1/applications/{created['id']}/",
                json={"config": {f"key{n}": n}},
                headers=staff,
                timeout=30,
            )
            statuses.append(response.status_code)

    with LiveServer(app) as server:
        threads = [threading.Thread(target=add_key, args=(n, server.url)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = requests.get(
            f"{server.url}/api/v1/applications/{created['id']}/", headers=staff, timeout=30
        ).json()

    assert statuses == [200] * WRITERS
    assert final["config"] == {
        "web_url": "https://a.example/",
        "visible_type": "empty",
        **{f"key{n}": n for n in range(WRITERS)},
    }


@pytest.mark.parametrize("held", ["row", "queue"])
def test_a_lock_held_past_the_timeout_is_a_503_never_a_hang(
    held, make_app, database_url, create, staff
):
    if held == "queue" and not ON_POSTGRESQL:
        pytest.skip("SQLite's writers wait for its write lock (the row case), not a queue")
    created = create(name="held")
    impatient = make_app(
        database_url, DATABASE_STATEMENT_TIMEOUT="0.5", DATABASE_CONNECT_TIMEOUT="0.5"
    )
    holder: psycopg.Connection[Any] | sqlite3.Connection
    if ON_POSTGRESQL:
        holder = psycopg.connect(database_url.replace("+psycopg", ""))
        if held == "row":
            holder.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (created["id"],))
        else:
            holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (WRITERS_OF, created["id"]))
    else:
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = impatient.test_client().patch(
            f"/api/v1/applications/{created['id']}/", json={"name": "changed"}, headers=staff
        )
        waited = time.monotonic() - started
    finally:
        holder.rollback() if ON_POSTGRESQL else holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "being changed by others" in response.json["message"]
    assert waited < 3
    with impatient.test_client() as client:
        assert (
            client.get(f"/api/v1/applications/{created['id']}/", headers=staff).json["name"]
            == "held"
        )


@postgresql_only
def test_writers_of_one_application_take_turns_in_the_order_they_came(
    app, database_url, create, staff
):
    """Each writer queues for its application (an advisory lock beside the row lock):
    under contention a late writer never overtakes earlier ones, and writers of other
    applications do not wait."""
    queued, other = create(name="queued")["id"], create(name="other")["id"]
    admin = psycopg.connect(direct_url(database_url), autocommit=True)
    holder = psycopg.connect(direct_url(database_url))
    holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (WRITERS_OF, queued))

    def waiting():
        return scalar(
            admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                " AND objid = %s AND NOT granted",
                (WRITERS_OF, queued),
            )
        )

    def rename(name, base_url):
        requests.patch(
            f"{base_url}/api/v1/applications/{queued}/",
            json={"name": name},
            headers=staff,
            timeout=30,
        ).raise_for_status()

    names = [f"writer {n}" for n in range(5)]
    try:
        with LiveServer(app) as server:
            elsewhere = requests.patch(
                f"{server.url}/api/v1/applications/{other}/",
                json={"name": "not kept waiting"},
                headers=staff,
                timeout=30,
            )
            threads = []
            for position, name in enumerate(names, start=1):
                threads.append(threading.Thread(target=rename, args=(name, server.url)))
                threads[-1].start()
                deadline = time.monotonic() + 10
                while waiting() < position and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert waiting() == position  # in line behind the holder and each other
            holder.rollback()
            for thread in threads:
                thread.join()
            history = requests.get(
                f"{server.url}/api/v1/applications/{queued}/history/?limit=10",
                headers=staff,
                timeout=30,
            ).json()
    finally:
        holder.close()
        admin.close()
    assert elsewhere.status_code == 200
    renamed = [
        entry["changes"][0]["new"] for entry in reversed(history) if entry["action"] != "create"
    ]
    assert renamed == names
