"""Reading and writing applications: defaults, config merge, locked writes, soft delete,
each write with its history entry."""

from contextlib import contextmanager

from flask import current_app
from flask_smorest import abort
from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError

from ..db_types import utcnow
from ..extensions import db, end_reads, reads, transaction
from . import history, secrets
from .models import Application

MAX_ID = 2**31 - 1  # the id column is a 32-bit integer


def merge_patch(target, patch):
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


def with_defaults(config):
    """A stored config always says its visible_type ("empty" unless given)."""
    config = dict(config or {})
    config.setdefault("visible_type", "empty")
    return config


# Reads and writes alike work on plain rows with Core statements: no ORM objects to
# build, and a reused compiled form.
TABLE = Application.__table__
APPLICATION_BY_ID = select(TABLE).where(TABLE.c.id == bindparam("app_id"))
LOCKED_BY_ID = APPLICATION_BY_ID.with_for_update()  # (SQLite: its BEGIN IMMEDIATE locks)
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
INSERT = TABLE.insert().values(_FROM_PARAMETERS).returning(*TABLE.c)
UPDATE = (
    TABLE.update()
    .where(TABLE.c.id == bindparam("app_id"))
    .values({**_FROM_PARAMETERS, "version": TABLE.c.version + 1})
    .returning(*TABLE.c)
)


def _parameters(values):
    return {f"new_{name}": values.get(name) for name in WRITTEN}


def _not_found(app_id):
    abort(404, message=f"Application {app_id} does not exist.")


def read_or_404(app_id):
    """The application as a read-only row, for responses."""
    row = None
    if app_id <= MAX_ID:
        row = reads().execute(APPLICATION_BY_ID, {"app_id": app_id}).mappings().first()
    return row or _not_found(app_id)


@contextmanager
def _locked(app_id=None):
    """A write's transaction (extensions.transaction); a lock waited for past the
    timeout (PostgreSQL's lock_timeout, SQLite's busy timeout) is the caller's 503."""
    try:
        with transaction():
            yield
    except OperationalError as error:
        if "lock" not in str(error.orig).lower():
            raise
        what = f"Application {app_id} is" if app_id else "Applications are"
        abort(
            503, message=f"{what} being changed by others; try again.", headers={"Retry-After": "1"}
        )


def version_of(row):
    """What an application's ETag is made of: its row's version, bumped by every write,
    and the secret keys' setting, which decides what its representation masks."""
    return [row["id"], row["version"], *current_app.config["SETTINGS"].application_secret_keys]


def _write(app_id, action, change, precondition=None):
    """Apply `change` (the stored row -> the fields to set) with its history entry, in
    one transaction that owns the row (PostgreSQL SELECT ... FOR UPDATE; SQLite's write
    lock), so concurrent writers of one row queue in the database and each does its
    work once; `precondition(row)` may refuse the write first (If-Match). Returns the
    row as written."""
    with _locked(app_id):
        row = None
        if app_id <= MAX_ID:
            row = db.session.connection().execute(LOCKED_BY_ID, {"app_id": app_id})
            row = row.mappings().first()
        if row is None:
            _not_found(app_id)
        if precondition is not None:
            precondition(row)
        after = {**row, **change(row), "modified_date": utcnow()}
        changes = history.diff(row, after, secrets.patterns())
        return history.written(
            db.session, UPDATE, {"app_id": app_id, **_parameters(after)}, action, changes
        )


def create_application(data, created_by):
    now = utcnow()
    values = {
        **COLUMN_DEFAULTS,
        **data,
        "config": with_defaults(data.get("config")),
        "created_by": created_by,
        "created_date": now,
        "modified_date": now,
    }
    changes = history.diff({}, values, secrets.patterns())
    if history.ONE_STATEMENT[db.engine.dialect.name]:  # atomic alone: no BEGIN, no COMMIT
        end_reads()
        row = history.written(db.session, INSERT, _parameters(values), "create", changes)
        db.session.commit()
        return row
    with _locked():
        return history.written(db.session, INSERT, _parameters(values), "create", changes)


def update_application(app_id, data, *, merge_config, precondition=None):
    """PUT (merge_config=False: a given config replaces) or PATCH (merge it)."""

    def change(row):
        values = dict(data)
        if "config" in values:
            config = (
                merge_patch(row["config"], values["config"]) if merge_config else values["config"]
            )
            values["config"] = with_defaults(
                secrets.unmasked(config, row["config"], secrets.patterns())
            )
        return values

    return _write(app_id, "update" if merge_config else "replace", change, precondition)


def soft_delete_application(app_id, precondition=None):
    _write(app_id, "delete", lambda row: {"is_active": False}, precondition)
