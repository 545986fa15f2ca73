"""The change history: what each write to an application records (who made it, when,
from which request, and a field-level diff: config keys included, secret values never),
and the statements that record it beside the write (service.py runs them)."""

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Executable, Select, bindparam, insert, select
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from .. import database
from ..db_types import utcnow
from . import pages
from .models import ApplicationChange
from .secrets import Matcher, is_secret, masked

log = logging.getLogger(__name__)

FIELDS = (
    "name",
    "application_type",
    "config",
    "is_active",
    "remote_object_id",
    "is_visible",
    "is_proxy_available",
    "related_application_id",
)
HISTORY = ApplicationChange.__table__
# Where app_proxy sends callers' signed identities: a change is logged at WARNING.
SENSITIVE = ("config.web_url", "is_proxy_available")


def diff(
    before: Mapping[Any, Any], after: Mapping[Any, Any], secret_keys: Matcher | None
) -> list[dict[str, Any]]:
    """[{field, old, new}] for each field that changed between two rows (mappings; {}
    before a create); config compared key by key (a nested object by its keys,
    "config.a.b"); a secret key only as {field, secret}."""
    changes: list[dict[str, Any]] = []
    for field in FIELDS:
        if field == "config":  # an application's config is an object, {} before it exists
            _diff_objects(
                "config",
                before.get("config") or {},
                after.get("config") or {},
                secret_keys,
                changes,
            )
        elif before.get(field) != after.get(field):
            changes.append({"field": field, "old": before.get(field), "new": after.get(field)})
    return changes


_ABSENT = object()


def _diff_objects(
    path: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    secret_keys: Matcher | None,
    changes: list[dict[str, Any]],
) -> None:
    for key in [*old, *(key for key in new if key not in old)]:
        _diff_value(
            f"{path}.{key}", key, old.get(key, _ABSENT), new.get(key, _ABSENT), secret_keys, changes
        )


def _diff_value(
    path: str,
    key: str,
    old: Any,
    new: Any,
    secret_keys: Matcher | None,
    changes: list[dict[str, Any]],
) -> None:
    if old == new:
        return
    if is_secret(key, secret_keys):
        changes.append({"field": path, "secret": True})
    elif isinstance(old, dict) and isinstance(new, dict):
        _diff_objects(path, old, new, secret_keys, changes)
    else:  # (a value that is an object or array may hold secrets of its own)
        shown_old = None if old is _ABSENT else masked(old, secret_keys)
        shown_new = None if new is _ABSENT else masked(new, secret_keys)
        if shown_old == shown_new and old is not _ABSENT and new is not _ABSENT:
            changes.append({"field": path, "secret": True})  # only a secret inside it
        else:
            changes.append({"field": path, "old": shown_old, "new": shown_new})


ENTRY = ("user_id", "request_id", "action", "changes", "created_date")
# SQLite's entry, a statement of its own.
ENTRY_INSERT = insert(HISTORY).values(
    {name: bindparam(name, type_=HISTORY.c[name].type) for name in ("application_id", *ENTRY)}
)


def in_one_statement() -> bool:
    """Whether the row and its entry are written by one statement (PostgreSQL's
    data-modifying CTEs): one round trip, and a create needs no transaction of its own.
    SQLite has no such CTEs."""
    return not database.is_sqlite(database.db.engine)


@cache
def with_entry(statement: ReturningInsert[Any] | ReturningUpdate[Any]) -> Executable:
    """`statement` and the insert of its entry as one (data-modifying CTEs), built once."""
    row = statement.cte("written")
    entry = select(
        row.c.id, *(bindparam(f"entry_{name}", type_=HISTORY.c[name].type) for name in ENTRY)
    )
    logged = insert(HISTORY).from_select(["application_id", *ENTRY], entry).cte("logged")
    return select(row).add_cte(logged)


class Actor(NamedTuple):
    """Who writes: the user (None: no user, a command) and the request it came in."""

    user_id: int | None
    request_id: str | None


def entry(actor: Actor, action: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The history entry of a write: its values by column (ENTRY)."""
    return {
        "user_id": actor.user_id,
        "request_id": actor.request_id,
        "action": action,
        "changes": changes,
        "created_date": utcnow(),
    }


def with_entry_parameters(parameters: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """A write's parameters and its entry's, as with_entry()'s statement takes them."""
    return {**parameters, **{f"entry_{name}": value for name, value in values.items()}}


def log_sensitive(app_id: int, action: str, changes: list[dict[str, Any]], actor: Actor) -> None:
    """Changes to where app_proxy sends callers' signed identities, logged at WARNING."""
    for change in changes:
        # (a new application only when it points app_proxy somewhere)
        if change["field"] in SENSITIVE and (action != "create" or change.get("new")):
            log.warning(
                "application %s: %s changed from %r to %r (user %s)",
                app_id,
                change["field"],
                change.get("old"),
                change.get("new"),
                actor.user_id,
            )


def page_query(
    app_id: int, args: Mapping[str, Any], page: int, size: int
) -> tuple[Select[Any], Select[Any], dict[str, Any]]:
    """An application's history as the list's page_query gives it: the page (newest
    first, filtered by `since` and `user`) with the `total` beside each entry, the count
    for a page past the end, and their parameters."""
    names = tuple(name for name in ("since", "user") if name in args)
    return (
        *_statements(names),
        {"app_id": app_id, **{name: args[name] for name in names}, **pages.window(page, size)},
    )


@cache
def _statements(names: tuple[str, ...]) -> tuple[Select[Any], Select[Any]]:
    where = [HISTORY.c.application_id == bindparam("app_id")]
    if "since" in names:
        where.append(HISTORY.c.created_date >= bindparam("since"))
    if "user" in names:
        where.append(HISTORY.c.user_id == bindparam("user"))
    return pages.paged(HISTORY, where, [HISTORY.c.id.desc()])
