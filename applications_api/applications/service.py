"""Writes to applications: defaults, config merge, soft delete, one transaction each."""

from flask_smorest import abort

from ..db_types import utcnow
from ..extensions import db
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


def get_or_404(app_id, *, for_update=False):
    application = None
    if app_id <= MAX_ID:
        # FOR UPDATE serialises concurrent writers of one row on PostgreSQL,
        # so two PATCHes merging config both survive.
        application = db.session.get(Application, app_id, with_for_update=for_update)
    if application is None:
        abort(404, message=f"Application {app_id} does not exist.")
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
    db.session.add(application)
    db.session.commit()
    return application


def update_application(app_id, data, *, merge_config):
    """PUT (merge_config=False: a given config replaces) or PATCH (merge it)."""
    application = get_or_404(app_id, for_update=True)
    for field, value in data.items():
        if field == "config":
            value = merge_patch(application.config, value) if merge_config else value
            value = with_defaults(value)
        setattr(application, field, value)
    application.modified_date = utcnow()
    db.session.commit()
    return application


def soft_delete_application(app_id):
    application = get_or_404(app_id, for_update=True)
    application.is_active = False
    application.modified_date = utcnow()
    db.session.commit()
