"""API keys: random, shown once, stored only as a digest.

Keys carry 192 random bits, so a fast SHA-256 digest is enough: there is nothing to
brute-force the way there is with a password, and lookups stay a single indexed query.
"""

import hashlib
import secrets

from sqlalchemy import insert, select, update

from .. import database
from .models import PREFIX_LENGTH, Token, User


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(username: str, *, staff: bool = False) -> str:
    """Create the user when missing, give it a new key, and return the key."""
    key = secrets.token_hex(24)
    # the user and its token are written together or not at all
    with database.transaction() as connection:
        user_id = connection.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            user_id = connection.scalar(
                insert(User).values(username=username, is_staff=staff).returning(User.id)
            )
        elif staff:
            connection.execute(update(User).where(User.id == user_id).values(is_staff=True))
        connection.execute(
            insert(Token).values(
                key_digest=key_digest(key), prefix=key[:PREFIX_LENGTH], user_id=user_id
            )
        )
    return key
