"""Who is calling, and whether they may: run before every protected view."""

import logging
import time
from datetime import timedelta
from typing import NamedTuple

from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import OperationalError

from ..db_types import utcnow
from ..extensions import reads
from .models import Token, User
from .tokens import key_digest

log = logging.getLogger(__name__)
LAST_USED_EVERY = 60  # seconds: how fresh list-tokens' "last used" is kept

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Built once: SQLAlchemy then reuses its compiled form (and its cache key) every time.
ACTIVE_USER_OF_TOKEN = (
    select(User.id, User.is_staff)
    .join(Token, Token.user_id == User.id)
    .where(Token.key_digest == bindparam("digest"), User.is_active.is_(True))
)


TOUCH_TOKEN = (
    update(Token)
    .where(
        Token.key_digest == bindparam("digest"),
        or_(Token.last_used.is_(None), Token.last_used < bindparam("stale_before")),
    )
    .values(last_used=bindparam("now"))
)
_touched = {}  # digest → when this process last wrote the token's last_used


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
    """The token's active user. Verified tokens are cached until users or tokens change
    (cache.py: every worker hears of it at once) or AUTH_CACHE_SECONDS pass. Invalid
    tokens are never cached."""
    digest = key_digest(key)
    cache = current_app.extensions["token_cache"]
    user = cache.get(digest)
    if user is None:
        generation = cache.generation()
        row = reads().execute(ACTIVE_USER_OF_TOKEN, {"digest": digest}).first()
        user = CurrentUser(*row) if row else None
        if user:
            cache.put(digest, user, generation)
            _touch(digest)
    return user


def _touch(digest):
    """Record when the token was last verified against the database, at most once a
    minute per process; best effort, never at the request's expense."""
    now = time.monotonic()
    if now - _touched.get(digest, -LAST_USED_EVERY) < LAST_USED_EVERY:
        return
    if len(_touched) > 10_000:
        _touched.clear()
    _touched[digest] = now
    when = utcnow()
    try:
        reads().execute(
            TOUCH_TOKEN,
            {
                "digest": digest,
                "now": when,
                "stale_before": when - timedelta(seconds=LAST_USED_EVERY),
            },
        )
    except OperationalError as error:  # a busy SQLite file, say: the next minute will do
        log.info("token last_used not updated: %s", error)


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
    if request.method not in SAFE_METHODS:
        require_staff("Only staff users may create, update or delete applications.")


def require_staff(message):
    if not g.user.is_staff:
        abort(403, message=message)
