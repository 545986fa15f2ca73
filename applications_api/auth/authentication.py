"""Who is calling, and whether they may: run before every protected view."""

from typing import NamedTuple

from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy import bindparam, select

from ..extensions import reads
from .models import Token, User
from .tokens import key_digest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Built once: SQLAlchemy then reuses its compiled form (and its cache key) every time.
ACTIVE_USER_OF_TOKEN = (
    select(User.id, User.is_staff)
    .join(Token, Token.user_id == User.id)
    .where(Token.key_digest == bindparam("digest"), User.is_active.is_(True))
)


class CurrentUser(NamedTuple):
    id: int
    is_staff: bool


def _key_from_header():
    header = request.headers.get("Authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "token" and rest.strip():
        return rest.strip()
    # The reference page sends the bare key: `Authorization: <key>`.
    return header or None


def _lookup_user(key):
    """The token's active user. Verified tokens are cached (TTLCache) for
    AUTH_CACHE_SECONDS: a deleted token or deactivated user is refused by every
    worker at most that long afterwards. Invalid tokens are never cached."""
    digest = key_digest(key)
    cache = current_app.extensions["token_cache"]
    user = cache.get(digest)
    if user is None:
        row = reads().execute(ACTIVE_USER_OF_TOKEN, {"digest": digest}).first()
        user = CurrentUser(*row) if row else None
        if user:
            cache.put(digest, user)
    return user


def require_token():
    """Blueprint before_request hook: 401 unless a valid token of an active user."""
    key = _key_from_header()
    user = _lookup_user(key) if key else None
    if user is None:
        abort(
            401,
            message="Missing or invalid token: send 'Authorization: Token <key>'.",
            headers={"WWW-Authenticate": "Token"},
        )
    g.user = user


def require_staff_for_writes():
    """Blueprint before_request hook, after require_token: writes are staff-only."""
    if request.method not in SAFE_METHODS and not g.user.is_staff:
        abort(403, message="Only staff users may create, update or delete applications.")
