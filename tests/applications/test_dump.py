"""The application dump's fast path gives exactly what marshmallow's fields would."""

import marshmallow as ma
import pytest
from sqlalchemy import select

from applications_api.applications.models import Application
from applications_api.applications.schemas import ApplicationSchema
from applications_api.database import db


@pytest.mark.parametrize(
    "fields",
    [
        {
            "config": {
                "web_url": "https://a.example.com/",
                "api_key": "s3cret",
                "nested": {"password": "x", "list": [{"token": "t"}, 1]},
            },
            "remote_object_id": 9223372036854775807,
            "related_application_id": "rel-1",
        },
        {"config": None, "is_visible": True, "is_proxy_available": True},
    ],
)
def test_the_fast_dump_is_marshmallows(app, create, fields):
    created = create(name="Dumped", **fields)
    with app.test_request_context():
        rows = (
            db.session.execute(select(Application.__table__).where(Application.id == created["id"]))
            .mappings()
            .all()
        )
        schema = ApplicationSchema()
        generic = ma.Schema._serialize(schema, rows, many=True)
        assert schema.dump(rows, many=True) == generic
        assert schema.dump(rows[0]) == generic[0]
        assert generic[0]["config"] in (None, created["config"])
