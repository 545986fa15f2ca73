"""list-tokens, revoke-token, deactivate-user, activate-user, set-staff: their output and
their refusals. (That every worker honours them at once: tests/test_freshness*.py.)"""

import pytest

from applications_api.auth.tokens import issue_token

LIST = "/api/v1/applications/"


def run(runner, *args):
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_tokens_shows_prefix_user_created_and_last_use(app, runner, client):
    with app.app_context():
        alice, bob = issue_token("alice", staff=True), issue_token("bob")
    client.get(LIST, headers={"Authorization": f"Token {bob}"})
    lines = run(runner, "list-tokens").splitlines()
    assert lines[0].split() == ["PREFIX", "USER", "CREATED", "LAST", "USED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {alice[:8], bob[:8]}
    assert "alice (staff)" in rows[alice[:8]] and rows[alice[:8]].endswith("never")
    assert "bob" in rows[bob[:8]] and "never" not in rows[bob[:8]]
    assert alice not in "\n".join(lines) and bob not in "\n".join(lines)  # keys stay secret
    only_bob = run(runner, "list-tokens", "bob").splitlines()[1:]
    assert [line.split()[0] for line in only_bob] == [bob[:8]]


def test_revoke_token_deletes_one_token(app, runner, client):
    with app.app_context():
        kept, revoked = issue_token("carol"), issue_token("carol")
    assert "Revoked" in run(runner, "revoke-token", revoked[:8])
    assert client.get(LIST, headers={"Authorization": f"Token {revoked}"}).status_code == 401
    assert client.get(LIST, headers={"Authorization": f"Token {kept}"}).status_code == 200


def test_deactivate_activate_and_set_staff(app, runner, client):
    with app.app_context():
        headers = {"Authorization": f"Token {issue_token('dave')}"}
    body = {"name": "x", "application_type": "oms"}
    run(runner, "deactivate-user", "dave")
    assert client.get(LIST, headers=headers).status_code == 401
    run(runner, "activate-user", "dave")
    assert client.get(LIST, headers=headers).status_code == 200
    run(runner, "set-staff", "dave", "--on")
    assert client.post(LIST, json=body, headers=headers).status_code == 201
    run(runner, "set-staff", "dave", "--off")
    assert client.post(LIST, json=body, headers=headers).status_code == 403
    assert "(inactive)" not in run(runner, "list-tokens", "dave")


@pytest.mark.parametrize(
    "args, message",
    [
        (["revoke-token", "00000000"], "no token has the prefix '00000000'"),
        (["deactivate-user", "nobody"], "no user is named 'nobody'"),
        (["activate-user", "nobody"], "no user is named 'nobody'"),
        (["set-staff", "nobody", "--on"], "no user is named 'nobody'"),
        (["list-tokens", "nobody"], "no user is named 'nobody'"),
        (["set-staff", "nobody"], "say --on"),
    ],
)
def test_refusals_name_what_is_wrong(app, runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


def test_set_staff_says_it_needs_on_or_off(runner):
    result = runner.invoke(args=["set-staff", "bob"])
    assert result.exit_code == 2
    assert "--on" in result.output and "--off" in result.output
    assert "Missing option" not in result.output


def test_create_token_keeps_reusing_its_key_file_while_the_key_works(app, runner, tmp_path):
    key_file = tmp_path / "staff-token"
    first = run(runner, "create-token", "admin", "--staff", "--key-file", str(key_file))
    key = first.splitlines()[-1]
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o077 == 0  # its owner's only
    again = run(runner, "create-token", "admin", "--staff", "--key-file", str(key_file))
    assert again.splitlines()[-1] == key
    run(runner, "revoke-token", key[:8])
    renewed = run(runner, "create-token", "admin", "--staff", "--key-file", str(key_file))
    assert renewed.splitlines()[-1] != key
    assert key_file.read_text().strip() == renewed.splitlines()[-1]
    run(runner, "set-staff", "admin", "--off")  # no longer what the file was kept for
    demoted = run(runner, "create-token", "admin", "--staff", "--key-file", str(key_file))
    assert demoted.splitlines()[-1] != renewed.splitlines()[-1]
