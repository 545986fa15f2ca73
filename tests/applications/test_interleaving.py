"""A write with If-Match and another write forced between its precondition and its lock:
another connection holds the row, the request starts and waits, the other connection
changes the row and commits, then lets go. The request must see the change and answer
412: checking If-Match before the lock is granted would overwrite it silently."""

import sqlite3
import threading
import time
from typing import Any

import psycopg
import pytest

from tests.support.app import ON_POSTGRESQL, scalar

URL = "/api/v1/applications/"
PUT_BODY = {
    "name": "writer",
    "application_type": "oms",
    "is_active": True,
    "is_visible": True,
    "is_proxy_available": False,
}


class Holder:
    """Another connection that holds the application's row (PostgreSQL: FOR UPDATE;
    SQLite: the write lock), and writes it before letting go."""

    def __init__(self, database_url, app_id):
        self.app_id = app_id
        self.conn: psycopg.Connection[Any] | sqlite3.Connection
        if ON_POSTGRESQL:
            url = database_url.replace("+psycopg", "")
            self.conn = psycopg.connect(url)
            self.conn.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (app_id,))
            self.admin = psycopg.connect(url, autocommit=True)
        else:
            path = database_url.removeprefix("sqlite:///")
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")

    def wait_for_the_writer(self):
        """Until the request is blocked behind this connection."""
        if not ON_POSTGRESQL:
            time.sleep(0.5)  # (SQLite shows no waiter: its writer retries for the busy timeout)
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = scalar(
                self.admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
            if waiting:
                return
            time.sleep(0.01)
        raise AssertionError("the request never waited for the row")

    def change_and_commit(self):
        self.conn.execute(
            "UPDATE applications SET name = 'racer', version = version + 1 WHERE id = "
            + str(int(self.app_id))
        )
        self.conn.commit() if ON_POSTGRESQL else self.conn.execute("COMMIT")

    def close(self):
        if ON_POSTGRESQL:
            self.conn.rollback()
            self.admin.close()
        self.conn.close()


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_a_write_committed_while_an_if_match_write_waits_makes_it_412(
    make_app, database_url, create, staff, method
):
    # (a patient app: its writer waits for the held row rather than answer 503)
    patient = make_app(database_url, DATABASE_STATEMENT_TIMEOUT="10", DATABASE_CONNECT_TIMEOUT="10")
    app_id = create(name="original")["id"]
    client = patient.test_client()
    etag = client.get(f"{URL}{app_id}/", headers=staff).headers["ETag"]
    body = {"PATCH": {"name": "writer"}, "PUT": PUT_BODY, "DELETE": None}[method]
    holder = Holder(database_url, app_id)
    answers = []

    def write():
        answers.append(
            patient.test_client().open(
                f"{URL}{app_id}/", method=method, json=body, headers={**staff, "If-Match": etag}
            )
        )

    writer = threading.Thread(target=write)
    try:
        writer.start()
        holder.wait_for_the_writer()
        assert answers == []  # (still waiting)
        holder.change_and_commit()
    finally:
        writer.join(30)
        holder.close()
    [answer] = answers
    assert answer.status_code == 412, (answer.status_code, answer.json)
    current = client.get(f"{URL}{app_id}/", headers=staff).json
    assert current["name"] == "racer"
    assert current["is_active"] is True


def test_without_if_match_the_waiting_write_applies_after_the_other(
    make_app, database_url, create, staff
):
    """The control: the same interleaving without a precondition is not refused, and it
    is applied to the row as the other write left it (the waiting write comes last)."""
    patient = make_app(database_url, DATABASE_STATEMENT_TIMEOUT="10", DATABASE_CONNECT_TIMEOUT="10")
    app_id = create(name="original", config={"a": 1})["id"]
    holder = Holder(database_url, app_id)
    answers = []

    def write():
        answers.append(
            patient.test_client().patch(f"{URL}{app_id}/", json={"config": {"b": 2}}, headers=staff)
        )

    writer = threading.Thread(target=write)
    try:
        writer.start()
        holder.wait_for_the_writer()
        holder.change_and_commit()
    finally:
        writer.join(30)
        holder.close()
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json["name"] == "racer"  # read after the other write, under the lock
    assert answer.json["config"] == {"a": 1, "b": 2, "visible_type": "empty"}
