from sqlalchemy import select

from applications_api.auth.models import Token, User
from applications_api.database import db


def last_line(result):
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_creates_a_staff_user_and_prints_a_working_key(app, runner, client):
    key = last_line(runner.invoke(args=["create-token", "admin", "--staff"]))
    response = client.post(
        "/api/v1/applications/",
        json={"name": "a", "application_type": "oms"},
        headers={"Authorization": f"Token {key}"},
    )
    assert response.status_code == 201


def test_without_staff_the_user_only_reads(app, runner, client):
    key = last_line(runner.invoke(args=["create-token", "viewer"]))
    headers = {"Authorization": f"Token {key}"}
    assert client.get("/api/v1/applications/", headers=headers).status_code == 200
    response = client.post(
        "/api/v1/applications/", json={"name": "a", "application_type": "oms"}, headers=headers
    )
    assert response.status_code == 403


def test_an_existing_user_gets_another_key(app, runner):
    first = last_line(runner.invoke(args=["create-token", "viewer"]))
    second = last_line(runner.invoke(args=["create-token", "viewer"]))
    assert first != second
    with app.app_context():
        assert len(db.session.scalars(select(User)).all()) == 1
        assert len(db.session.scalars(select(Token)).all()) == 2


def test_username_is_required_and_checked(runner):
    assert runner.invoke(args=["create-token"]).exit_code != 0
    result = runner.invoke(args=["create-token", "x" * 151])
    assert result.exit_code != 0
    assert "USERNAME" in result.output


def test_a_token_that_cannot_be_stored_leaves_no_new_user_or_staff_change(app, runner, monkeypatch):
    from applications_api.auth import tokens

    monkeypatch.setattr(tokens.secrets, "token_hex", lambda n: "k" * (2 * n))  # one key
    last_line(runner.invoke(args=["create-token", "viewer"]))
    for args in (["create-token", "newcomer"], ["create-token", "viewer", "--staff"]):
        assert runner.invoke(args=args).exit_code != 0  # the key's digest is taken
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        assert [(user.username, user.is_staff) for user in users] == [("viewer", False)]
        db.session.remove()
