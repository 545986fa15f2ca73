import threading

import requests

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


def test_a_lock_held_past_the_timeout_is_a_503_never_a_hang(make_app, database_url, create, staff):
    import sqlite3
    import time

    import psycopg

    from tests.support.app import ON_POSTGRESQL

    created = create(name="held")
    impatient = make_app(
        database_url, DATABASE_STATEMENT_TIMEOUT="0.5", DATABASE_CONNECT_TIMEOUT="0.5"
    )
    if ON_POSTGRESQL:
        holder = psycopg.connect(database_url.replace("+psycopg", ""))
        holder.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (created["id"],))
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
