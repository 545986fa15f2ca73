import pytest
from sqlalchemy import func, select

from applications_api.applications.models import Application
from applications_api.database import db
from tests.support.app import postgresql_only


def test_unknown_path_is_404_json(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.is_json
    assert response.json["code"] == 404


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("post", "/api/v1/applications/1/", {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}),
        ("delete", "/api/v1/applications/", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("post", "/api/v1/healthcheck/", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_unsupported_method_is_405_with_allow(client, staff, method, path, allowed):
    response = getattr(client, method)(path, headers=staff)
    assert response.status_code == 405
    assert response.json["code"] == 405
    assert set(response.headers["Allow"].split(", ")) == allowed


@pytest.fixture
def fresh_app(make_app, database_url):
    return make_app(database_url)


def test_an_unexpected_error_is_500_json_without_traceback(fresh_app, reader):
    def broken():
        raise RuntimeError("secret internals")

    fresh_app.add_url_rule("/broken", view_func=broken)
    response = fresh_app.test_client().get("/broken", headers=reader)
    assert response.status_code == 500
    assert response.json == {
        "code": 500,
        "status": "Internal Server Error",
        "message": "An unexpected error occurred.",
    }
    assert b"secret internals" not in response.data
    assert b"Traceback" not in response.data


@postgresql_only
def test_a_value_the_database_refuses_is_400_and_nothing_is_written(fresh_app, reader):
    def store_too_long_name():
        db.session.add(Application(name="x" * 500, application_type="oms"))
        db.session.commit()

    fresh_app.add_url_rule("/too-long", view_func=store_too_long_name)
    response = fresh_app.test_client().get("/too-long", headers=reader)
    assert response.status_code == 400
    assert response.json["errors"]["json"]
    with fresh_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Application)) == 0
