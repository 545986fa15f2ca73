"""Keys an attacker could come by that are almost right: a real key's prefix (which
list-tokens prints) with another tail, a key with one character changed, cut or
lengthened, another user's prefix with this one's tail. None may authenticate, for a
staff user or a reader, with the token cache off or holding the real key."""

import secrets

import pytest

from applications_api.auth.tokens import issue_token
from tests.support.app import auth_header, caches_trusted

URL = "/api/v1/applications/"
BODY = {"name": "a", "application_type": "oms"}


def other(char):
    """A hex digit other than `char`."""
    return "0" if char != "0" else "1"


def near_misses(key, other_key):
    return {
        "same prefix, another tail": key[:8] + secrets.token_hex(20),
        "same prefix, the other key's tail": key[:8] + other_key[8:],
        "the other key's prefix, this tail": other_key[:8] + key[8:],
        "the prefix alone": key[:8],
        "one character short": key[:-1],
        "one character more": key + "0",
        "upper case": key.upper(),
        **{
            f"character {i} changed": key[:i] + other(key[i]) + key[i + 1 :]
            for i in (0, 1, 7, 8, 9, len(key) - 1)
        },
    }


@pytest.fixture
def keys(app):
    with app.app_context():
        return {"staff": issue_token("operator", staff=True), "reader": issue_token("viewer")}


def assert_refused(client, key):
    for form in (f"Token {key}", key):
        headers = {"Authorization": form}
        get = client.get(URL, headers=headers)
        assert get.status_code == 401, (form, get.status_code)
        post = client.post(URL, json=BODY, headers=headers)
        assert post.status_code == 401, (form, post.status_code)


@pytest.mark.parametrize("who", ["staff", "reader"])
def test_a_near_miss_of_a_real_key_is_401(client, keys, who):
    key = keys[who]
    other_key = keys["reader" if who == "staff" else "staff"]
    assert client.get(URL, headers=auth_header(key)).status_code == 200  # (the real one works)
    for name, miss in near_misses(key, other_key).items():
        assert miss != key
        try:
            assert_refused(client, miss)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


@pytest.mark.parametrize("who", ["staff", "reader"])
def test_a_near_miss_is_401_while_the_real_key_is_cached(make_app, database_url, keys, who):
    """The cache is keyed by the whole key (its digest), not by anything shorter."""
    cached = make_app(database_url, AUTH_CACHE_SECONDS="300")
    client = cached.test_client()
    key = keys[who]
    other_key = keys["reader" if who == "staff" else "staff"]
    assert client.get(URL, headers=auth_header(key)).status_code == 200
    caches_trusted(cached)
    assert client.get(URL, headers=auth_header(key)).status_code == 200  # now from the cache
    for name, miss in near_misses(key, other_key).items():
        try:
            assert_refused(client, miss)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_many_keys_sharing_a_prefix_each_answer_for_their_own_user(app, client):
    """Two tokens whose keys begin alike (prefixes are only 8 characters) are told apart."""
    with app.app_context():
        staff_key = issue_token("operator", staff=True)
        reader_key = issue_token("viewer")
    from sqlalchemy import text

    from applications_api.database import db

    with app.app_context():
        # the reader's token takes the staff key's prefix, as two random keys may
        db.session.execute(
            text("UPDATE tokens SET prefix = :prefix WHERE prefix = :old"),
            {"prefix": staff_key[:8], "old": reader_key[:8]},
        )
        db.session.commit()
    assert client.post(URL, json=BODY, headers=auth_header(reader_key)).status_code == 403
    assert client.post(URL, json=BODY, headers=auth_header(staff_key)).status_code == 201
    assert_refused(client, staff_key[:8] + secrets.token_hex(20))
