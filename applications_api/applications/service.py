"""The applications feature's one door: reading and listing applications and their
history, writing them (defaults, config merge, locked writes, soft delete, each write
with its history entry, for the Actor the caller names), and the web_url app_proxy
forwards to. Its statements are built once at import, beside the functions that run
them."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from sqlalchemy import bindparam, func, select, true
from sqlalchemy.exc import OperationalError
from webargs.flaskparser import abort

from .. import database
from ..db_types import utcnow
from ..runtime import current_settings, runtime
from . import filters, history, secrets
from .fields import is_web_url
from .history import Actor
from .models import Application

Row = database.Row


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: returns a new value, leaves both arguments untouched."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def with_defaults(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored config always says its visible_type ("empty" unless given)."""
    config = dict(config or {})
    config.setdefault("visible_type", "empty")
    return config


# Reads and writes alike work on plain rows with Core statements: no ORM objects to
# build, and a reused compiled form.
TABLE = Application.__table__
APPLICATION_BY_ID = select(TABLE).where(TABLE.c.id == bindparam("app_id"))
# A writer's read of the row it changes. On PostgreSQL it first queues for the
# application (an advisory lock, granted in the order asked: with the row lock alone,
# late writers overtook earlier ones and some waited many times longer than the rest),
# then locks the row. (On SQLite, BEGIN IMMEDIATE has taken the write lock.)
WRITERS_OF = 1  # the queue's kind (advisory lock keys are the database's: the only one used)
_QUEUE = select(func.pg_advisory_xact_lock(WRITERS_OF, bindparam("app_id"))).cte("queue")
QUEUED_BY_ID = APPLICATION_BY_ID.join(_QUEUE, true()).with_for_update(of=TABLE)
# What a create leaves out and the column supplies (a history entry lists them too).
COLUMN_DEFAULTS = {
    column.name: column.default.arg
    for column in TABLE.c
    if column.default is not None and column.default.is_scalar
}
# Writes set every column from parameters, so each is one statement built and compiled
# once (building an INSERT or UPDATE per request cost more than its round trip).
WRITTEN = tuple(column.name for column in TABLE.c if column.name not in ("id", "version"))
_FROM_PARAMETERS = {name: bindparam(f"new_{name}", type_=TABLE.c[name].type) for name in WRITTEN}
INSERT = (
    TABLE.insert()
    .values({**_FROM_PARAMETERS, "version": COLUMN_DEFAULTS["version"]})
    .returning(*TABLE.c)
)
UPDATE = (
    TABLE.update()
    .where(TABLE.c.id == bindparam("app_id"))
    .values({**_FROM_PARAMETERS, "version": TABLE.c.version + 1})
    .returning(*TABLE.c)
)


PROXIED_CONFIG = select(TABLE.c.config).where(
    TABLE.c.id == bindparam("app_id"),
    TABLE.c.is_active.is_(True),
    TABLE.c.is_proxy_available.is_(True),
)


def _parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"new_{name}": values.get(name) for name in WRITTEN}


def _not_found(app_id: int) -> NoReturn:
    abort(404, message=f"Application {app_id} does not exist.")


def read_or_404(app_id: int) -> Row:
    """The application as a read-only row, for responses."""
    return database.first(APPLICATION_BY_ID, {"app_id": app_id}) or _not_found(app_id)


def list_page(args: Mapping[str, Any], page: int, size: int) -> tuple[int, Sequence[Row]]:
    """(total, rows of the page) of the filtered, sorted list."""
    return _page(page, *filters.page_query(args, page, size))


def history_page(
    app_id: int, args: Mapping[str, Any], page: int, size: int
) -> tuple[int, Sequence[Row]]:
    """(total, entries of the page) of an application's history, newest first; 404 for
    an application that does not exist (asked only when the page is empty: an entry
    says the application exists)."""
    total, entries = _page(page, *history.page_query(app_id, args, page, size))
    if not entries:
        read_or_404(app_id)
    return total, entries


def _page(
    page: int, page_statement: Any, count_statement: Any, parameters: Mapping[str, Any]
) -> tuple[int, Sequence[Row]]:
    """(total, rows) of a page with its total beside each row (pages.paged): one
    statement, unless the page is past the end (then no row carries the total)."""
    rows = database.rows(page_statement, parameters)
    if rows:
        return rows[0]["total"], rows
    if page == 1:
        return 0, rows
    counted = database.first(count_statement, parameters)
    return (counted["total"] if counted else 0), rows


def proxy_target(app_id: int) -> str:
    """The web_url app_proxy forwards application `app_id`'s calls to; 404 unless it
    exists, is active, proxy-available and has a valid web_url.

    At most one query, none while the answer is cached: a found web_url is kept until
    an application changes (cache.py: every worker hears of it at once) or
    APP_PROXY_CACHE_SECONDS pass.
    """
    cache = runtime().proxy_targets
    web_url = cache.get(app_id)
    if web_url:
        return str(web_url)
    generation = cache.generation()
    row = database.first(PROXIED_CONFIG, {"app_id": app_id})
    web_url = (row["config"] or {}).get("web_url") if row else None
    if not is_web_url(web_url):
        abort(404, message=f"Application {app_id} is not available through app_proxy.")
    cache.put(app_id, web_url, generation)
    return str(web_url)


@contextmanager
def _locked(app_id: int | None = None) -> Iterator[None]:
    """A write's transaction (database.transaction); a lock waited for past the
    timeout (PostgreSQL's lock_timeout, SQLite's busy timeout) is the caller's 503."""
    try:
        with database.transaction():
            yield
    except OperationalError as error:
        if "lock" not in str(error.orig).lower():
            raise
        what = f"Application {app_id} is" if app_id else "Applications are"
        abort(
            503, message=f"{what} being changed by others; try again.", headers={"Retry-After": "1"}
        )


def version_of(row: Row) -> list[Any]:
    """What an application's ETag is made of: its row's version, bumped by every write,
    and the secret keys' setting, which decides what its representation masks."""
    return [row["id"], row["version"], *current_settings().application_secret_keys]


def versions_of(total: int, rows: Sequence[Row]) -> list[Any]:
    """What a list page's ETag is made of: the total, and each row's id and version
    (the secret keys' setting once)."""
    ids = [(row["id"], row["version"]) for row in rows]
    return [total, current_settings().application_secret_keys, ids]


Change = Callable[[Row], dict[str, Any]]
Precondition = Callable[[Row], None]


def _written(
    statement: Any, parameters: Mapping[str, Any], actor: Actor, action: str, changes: list
) -> Row:
    """Run `statement` (an INSERT or UPDATE of one application, RETURNING it) and insert
    its history entry in the same transaction, on PostgreSQL in the same statement. A
    write that changes no field records no entry (it still touches modified_date, as
    every update does). Returns the row as written."""
    if not changes:
        return database.rows(statement, parameters, last=True)[0]
    entry = history.entry(actor, action, changes)
    if history.in_one_statement():
        both = history.with_entry_parameters(parameters, entry)
        row = database.rows(history.with_entry(statement), both, last=True)[0]
    else:
        row = database.rows(statement, parameters)[0]
        database.rows(history.ENTRY_INSERT, {**entry, "application_id": row["id"]}, last=True)
    history.log_sensitive(row["id"], action, changes, actor)
    return row


def _write(
    app_id: int,
    actor: Actor,
    action: str,
    change: Change,
    precondition: Precondition | None = None,
) -> Row:
    """Apply `change` (the stored row -> the fields to set) with its history entry, in
    one transaction that owns the row (PostgreSQL: its writers' queue, then SELECT ...
    FOR UPDATE; SQLite's write lock), so concurrent writers of one row take turns in
    the database and each does its work once; `precondition(row)` may refuse the write
    first (If-Match). Returns the row as written."""
    with _locked(app_id):
        locked = APPLICATION_BY_ID if database.is_sqlite(database.db.engine) else QUEUED_BY_ID
        row = database.first(locked, {"app_id": app_id})
        if row is None:
            _not_found(app_id)
        if precondition is not None:
            precondition(row)
        after = {**row, **change(row), "modified_date": utcnow()}
        changes = history.diff(row, after, secrets.patterns())
        parameters = {"app_id": app_id, **_parameters(after)}
        return _written(UPDATE, parameters, actor, action, changes)


def _unmasked(config: Any, stored: Any) -> Any:
    """`config` with the masks it sends back restored (secrets.py); 400 for a mask that
    stands for nothing stored."""
    try:
        return secrets.unmasked(config, stored, secrets.patterns())
    except secrets.UnrestorableMask as error:
        abort(400, errors={"json": {"config": [str(error)]}})


def create_application(data: Mapping[str, Any], actor: Actor) -> Row:
    now = utcnow()
    values = {
        **COLUMN_DEFAULTS,
        **data,
        "config": with_defaults(_unmasked(data.get("config"), None)),
        "created_by": actor.user_id,
        "created_date": now,
        "modified_date": now,
    }
    changes = history.diff({}, values, secrets.patterns())
    if history.in_one_statement():  # atomic alone: no BEGIN, no COMMIT
        return _written(INSERT, _parameters(values), actor, "create", changes)
    with _locked():
        return _written(INSERT, _parameters(values), actor, "create", changes)


def update_application(
    app_id: int,
    data: Mapping[str, Any],
    actor: Actor,
    *,
    merge_config: bool,
    precondition: Precondition | None = None,
) -> Row:
    """PUT (merge_config=False: a given config replaces) or PATCH (merge it)."""

    def change(row: Row) -> dict[str, Any]:
        values = dict(data)
        if "config" in values:
            config = (
                merge_patch(row["config"], values["config"]) if merge_config else values["config"]
            )
            values["config"] = with_defaults(_unmasked(config, row["config"]))
        return values

    return _write(app_id, actor, "update" if merge_config else "replace", change, precondition)


def soft_delete_application(
    app_id: int, actor: Actor, precondition: Precondition | None = None
) -> None:
    _write(app_id, actor, "delete", lambda row: {"is_active": False}, precondition)
