"""API keys: random, shown once, stored only as a digest.

Keys carry 192 random bits, so a fast SHA-256 digest is enough: there is nothing to
brute-force the way there is with a password, and lookups stay a single indexed query.
"""

import hashlib
import secrets

from sqlalchemy import bindparam, insert, select, update

from .. import database
from ..db_types import utcnow
from .models import PREFIX_LENGTH, Token, User

USER_NAMED = select(User.id).where(User.username == bindparam("username"))
NEW_USER = (
    insert(User)
    .values(
        username=bindparam("username"),
        is_staff=bindparam("staff"),
        is_active=True,
        created_date=bindparam("now"),
    )
    .returning(User.id)
)
MAKE_STAFF = update(User).where(User.id == bindparam("user_id")).values(is_staff=True)
NEW_TOKEN = insert(Token).values(
    key_digest=bindparam("digest"),
    prefix=bindparam("prefix"),
    user_id=bindparam("user_id"),
    created_date=bindparam("now"),
)


def key_digest(key: str) -> str:
    # (a key comes from a header or a key file, and neither can hold a lone surrogate,
    # the one thing UTF-8 cannot encode)
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(username: str, *, staff: bool = False) -> str:
    """Create the user when missing, give it a new key, and return the key."""
    key = secrets.token_hex(24)
    now = utcnow()
    # the user and its token are written together or not at all
    with database.transaction():
        user = database.first(USER_NAMED, {"username": username})
        if user is None:
            user = database.first(NEW_USER, {"username": username, "staff": staff, "now": now})
        elif staff:
            database.rows(MAKE_STAFF, {"user_id": user["id"]})
        assert user is not None  # (the INSERT returns its row)
        token = {"digest": key_digest(key), "prefix": key[:PREFIX_LENGTH], "now": now}
        database.rows(NEW_TOKEN, {**token, "user_id": user["id"]}, last=True)
    return key
