"""Who is calling, and whether they may: run before every protected view."""

import time
from typing import NamedTuple

from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy import select

from ..extensions import db
from .models import Token, User
from .tokens import key_digest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


class TokenCache:
    """Recently verified tokens of this process, so most requests skip the token query.

    Staleness bound: a deleted token or a deactivated user is refused by every worker
    at most `ttl` seconds (AUTH_CACHE_SECONDS) later. Only valid tokens are cached.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, ttl):
        self.ttl = ttl
        self.entries = {}

    def get(self, digest):
        entry = self.entries.get(digest)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, digest, user):
        if self.ttl <= 0:
            return
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries = {}
        self.entries[digest] = (user, time.monotonic() + self.ttl)


def _lookup_user(key):
    digest = key_digest(key)
    cache = current_app.extensions["token_cache"]
    user = cache.get(digest)
    if user is None:
        row = db.session.execute(
            select(User.id, User.is_staff)
            .join(Token, Token.user_id == User.id)
            .where(Token.key_digest == digest, User.is_active.is_(True))
        ).first()
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
