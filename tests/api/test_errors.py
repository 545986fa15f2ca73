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


@pytest.mark.parametrize(
    "body, where",
    [
        (b"{", "line 1, column 2"),
        (b'{"name": "x",}', "line 1, column 14"),
        (b"not json", "line 1, column 1"),
        (b'{"name":\n  "x" "y"}', "line 2, column 7"),
        (b"", "the body is empty"),
        (b"\xff\xfe", "Invalid JSON body"),
    ],
    ids=["unclosed", "trailing comma", "not json", "second line", "empty", "not utf-8"],
)
def test_a_malformed_json_body_says_so_and_where(client, staff, body, where):
    response = client.post(
        "/api/v1/applications/",
        data=body,
        headers={**staff, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    (message,) = response.json["errors"]["json"]
    assert message.startswith("Invalid JSON body:")
    assert where in message
    assert "4,300" not in message


def test_a_number_past_the_digit_limit_keeps_its_own_message(client, staff):
    body = b'{"name": "x", "application_type": "oms", "remote_object_id": 1' + b"0" * 5000 + b"}"
    response = client.post(
        "/api/v1/applications/", data=body, headers={**staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["errors"]["json"] == [
        "Invalid JSON body: a number has more than 4,300 digits."
    ]


@pytest.mark.parametrize("path", ["/nothing", "/api/v1/nothing/", "/api/v1/applications/1/x"])
def test_an_unknown_path_says_where_the_api_and_its_docs_are(client, staff, path):
    message = client.get(path, headers=staff).json["message"]
    assert path in message
    assert "/api/v1/docs/" in message and "/api/v1/openapi.json" in message
    assert "spelling" not in message


def test_a_refused_method_says_which_are_allowed(client, staff):
    message = client.delete("/api/v1/applications/", headers=staff).json["message"]
    assert message.startswith("DELETE is not allowed on /api/v1/applications/")
    assert "POST" in message and "GET" in message


@pytest.mark.parametrize("path", ["/", "/api/v1/", "/api/v1"])
def test_the_front_doors_point_at_the_docs(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json["documentation"] == "/api/v1/docs/"
    assert response.json["openapi"] == "/api/v1/openapi.json"
    assert client.get(response.json["openapi"]).status_code == 200
    assert client.get(response.json["documentation"]).status_code == 200


def test_an_unreachable_database_is_a_json_503_with_retry_after(make_app):
    """Any request that needs the database while it cannot be reached: the service is
    unavailable for now (RFC 9110 §15.6.4), and says when to try again."""
    app = make_app("postgresql://postgres@127.0.0.1:1/nothing")
    response = app.test_client().get(
        "/api/v1/applications/", headers={"Authorization": "Token " + "k" * 40}
    )
    assert response.status_code == 503
    assert response.json == {
        "code": 503,
        "status": "Service Unavailable",
        "message": "The database is unavailable; try again shortly.",
    }
    assert response.headers["Retry-After"] == "1"
