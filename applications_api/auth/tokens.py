"""API keys: random, shown once, stored only as a digest.

Keys carry 192 random bits, so a fast SHA-256 digest is enough: there is nothing to
brute-force the way there is with a password, and lookups stay a single indexed query.
"""

import hashlib
import secrets

from sqlalchemy import select

from ..database import db
from .models import PREFIX_LENGTH, Token, User


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(username: str, *, staff: bool = False) -> str:
    """Create the user when missing, give it a new key, and return the key."""
    key = secrets.token_hex(24)
    # the user and its token are written together or not at all (one ORM commit)
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, is_staff=staff)
    elif staff:
        user.is_staff = True
    db.session.add(Token(key_digest=key_digest(key), prefix=key[:PREFIX_LENGTH], user=user))
    db.session.commit()
    return key
