"""Who is calling, and whether they may.

Default-deny: every request that matched a route needs a valid token of an active user,
except the endpoints PUBLIC_ENDPOINTS names. A new blueprint is protected without
anyone remembering to protect it.
"""

import logging
import time
from datetime import timedelta
from typing import NamedTuple

from flask import Flask, g, request
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import InternalError, OperationalError
from webargs.flaskparser import abort

from .. import database
from ..db_types import utcnow
from ..runtime import runtime
from .models import Token, User
from .tokens import key_digest

log = logging.getLogger(__name__)
LAST_USED_EVERY = 60  # seconds: how fresh list-tokens' "last used" is kept

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What anyone may reach: the health check, the API's documentation and where it is,
# app_proxy's public keys, and /metrics (kept off the public site by nginx,
# deploy/nginx.conf).
PUBLIC_ENDPOINTS = frozenset(
    {
        "health.Healthcheck",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "swagger_ui_assets.swagger_ui_asset",
        "swagger_ui_assets.favicon",
        "index.where_things_are",
        "metrics.prometheus_metrics",
        "app_proxy_keys.PublicKeys",
    }
)


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
_touched: dict[str, float] = {}  # digest → when this process last wrote the token's last_used


class CurrentUser(NamedTuple):
    id: int
    is_staff: bool


def init_app(app: Flask) -> None:
    app.before_request(authenticate)


def current_user() -> CurrentUser | None:
    """The caller this request authenticated; None on public endpoints and outside
    requests."""
    user: CurrentUser | None = g.get("_user")
    return user


def authenticated_user() -> CurrentUser:
    """The caller, in a view default-deny protects (it is always there)."""
    user = current_user()
    if user is None:
        raise RuntimeError("no authenticated user: is this endpoint public?")
    return user


def _key_from_header() -> str | None:
    header = request.headers.get("Authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "token" and rest.strip():
        return rest.strip()
    # The reference page sends the bare key: `Authorization: <key>`.
    return header or None


def _lookup_user(key: str) -> CurrentUser | None:
    """The token's active user. Verified tokens are cached until users or tokens change
    (cache.py: every worker hears of it at once) or AUTH_CACHE_SECONDS pass. Invalid
    tokens are never cached."""
    digest = key_digest(key)
    cache = runtime().token_cache
    user = cache.get(digest)
    if user is None:
        generation = cache.generation()
        row = database.first(ACTIVE_USER_OF_TOKEN, {"digest": digest})
        user = CurrentUser(row["id"], row["is_staff"]) if row else None
        if user:
            cache.put(digest, user, generation)
            _touch(digest)
    return user


def _touch(digest: str) -> None:
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
        with database.transaction():  # (where its lock wait is bounded behind a pooler too)
            database.rows(
                TOUCH_TOKEN,
                {
                    "digest": digest,
                    "now": when,
                    "stale_before": when - timedelta(seconds=LAST_USED_EVERY),
                },
                last=True,
            )
    except (OperationalError, InternalError) as error:
        # A busy SQLite file, or a standby's read-only transaction: the next minute will do.
        if isinstance(error, InternalError) and not database.refuses_writes(error):
            raise
        log.info("token last_used not updated: %s", error)


def authenticate() -> None:
    """Before every request: 401 unless a valid token of an active user, or the route is
    public. A request that matched no route goes on to its 404 or 405."""
    if request.routing_exception is not None or request.endpoint in PUBLIC_ENDPOINTS:
        return
    key = _key_from_header()
    user = _lookup_user(key) if key else None
    if user is None:
        abort(
            401,
            message="Missing or invalid token: send 'Authorization: Token <key>'.",
            headers={"WWW-Authenticate": "Token"},
        )
    g._user = user


def require_staff_for_writes() -> None:
    """Blueprint before_request hook, after authenticate: writes are staff-only."""
    if request.method not in SAFE_METHODS:
        require_staff("Only staff users may create, update or delete applications.")


def require_staff(message: str) -> None:
    if not authenticated_user().is_staff:
        abort(403, message=message)
