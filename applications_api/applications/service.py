"""Reading and writing applications: defaults, config merge, locked writes, soft delete,
each write with its history entry."""

from contextlib import contextmanager

from flask_smorest import abort
from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError

from ..db_types import utcnow
from ..extensions import db, reads, transaction
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


# Reads fetch plain rows with a statement built once (no ORM objects to construct, a
# reused compiled form); writes load the ORM object, whose version check they need.
APPLICATION_BY_ID = select(Application.__table__).where(Application.id == bindparam("app_id"))


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
        abort(503, message=f"{what} being changed by others; try again.",
              headers={"Retry-After": "1"})


def _write(app_id, action, change):
    """Apply `change` to the application, with its history entry, in one transaction
    that owns the row (PostgreSQL SELECT ... FOR UPDATE; SQLite's write lock), so
    concurrent writers of one row queue in the database and each does its work once."""
    with _locked(app_id):
        application = db.session.scalar(
            select(Application).where(Application.id == app_id).with_for_update()
            .execution_options(populate_existing=True)
        ) if app_id <= MAX_ID else None
        if application is None:
            _not_found(app_id)
        before = history.snapshot(application)
        change(application)
        application.modified_date = utcnow()
        history.record(db.session, application, action,
                       history.diff(before, history.snapshot(application), secrets.patterns()))
    return application


def create_application(data, created_by):
    now = utcnow()
    application = Application(
        **data,
        created_by=created_by,
        created_date=now,
        modified_date=now,
    )
    application.config = with_defaults(data.get("config"))
    with _locked():
        db.session.add(application)
        db.session.flush()  # the id, for the history entry
        history.record(db.session, application, "create",
                       history.diff({}, history.snapshot(application), secrets.patterns()))
    return application


def update_application(app_id, data, *, merge_config):
    """PUT (merge_config=False: a given config replaces) or PATCH (merge it)."""

    def change(application):
        for field, value in data.items():
            if field == "config":
                value = merge_patch(application.config, value) if merge_config else value
                value = with_defaults(
                    secrets.unmasked(value, application.config, secrets.patterns())
                )
            setattr(application, field, value)

    return _write(app_id, "update" if merge_config else "replace", change)


def soft_delete_application(app_id):
    def change(application):
        application.is_active = False

    _write(app_id, "delete", change)
