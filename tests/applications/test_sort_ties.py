"""Ties in every sort key: rows equal in the key come in id order whichever way the key
goes, so pages never overlap or skip a row. The rows are stored out of id order (on
PostgreSQL an update moves a row to the end of its table) so that no scan order can
pass for the tie-break."""

import pytest
from sqlalchemy import text

from applications_api.database import db

URL = "/api/v1/applications/"
KEYS = ["name", "created_date", "modified_date"]
SORTS = [direction + key for key in [*KEYS, "id"] for direction in ("", "-")]


@pytest.fixture
def tied(app, create):
    """Eight applications in two groups (a, b), equal within a group in every key."""
    ids = [create(name="n")["id"] for _ in range(8)]
    group = {app_id: ("a" if index % 2 else "b") for index, app_id in enumerate(ids)}
    with app.app_context():
        for app_id, which in group.items():
            moment = "2024-01-01 00:00:00" if which == "a" else "2025-01-01 00:00:00"
            db.session.execute(
                text(
                    "UPDATE applications SET name = :name, created_date = :moment,"
                    " modified_date = :moment WHERE id = :id"
                ),
                {"name": f"group {which}", "moment": moment, "id": app_id},
            )
        db.session.commit()
        for app_id in ids[:4]:  # stored again, after the others
            db.session.execute(
                text("UPDATE applications SET version = version WHERE id = :id"), {"id": app_id}
            )
            db.session.commit()
    return group


def expected(group, sort):
    key = sort.lstrip("-")
    if key == "id":
        return sorted(group, reverse=sort.startswith("-"))
    first = "a" if not sort.startswith("-") else "b"
    return [i for i in sorted(group) if group[i] == first] + [
        i for i in sorted(group) if group[i] != first
    ]


@pytest.mark.parametrize("sort", SORTS)
def test_ties_come_in_id_order_and_pages_tile_the_list(client, reader, tied, sort):
    whole = client.get(URL, query_string={"sort": sort, "limit": 100}, headers=reader)
    assert [row["id"] for row in whole.json] == expected(tied, sort)
    for size in (1, 3):
        paged = []
        for page in range(1, 10):
            answer = client.get(
                URL, query_string={"sort": sort, "limit": size, "page": page}, headers=reader
            )
            paged += [row["id"] for row in answer.json]
        assert paged == expected(tied, sort), size
