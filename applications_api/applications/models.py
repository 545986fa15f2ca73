from ..database import db
from ..db_types import UTCDateTime, utcnow

APPLICATION_TYPES = (
    "oms",
    "instore",
    "commerce",
    "zero",
    "live-commerce",
    "live-commerce-landing-page",
    "omnitron-frontend",
    "sales-channel",
    "bi-tool",
    "integrator",
    "ui-protocol",
    "invoicer",
    "extension",
    "seller_center_be",
    "seller_center_fe",
    "cargo_extension",
    "b2b_extension",
    "integration",
)
NAME_MAX_LENGTH = 100
RELATED_ID_MAX_LENGTH = 255


class Application(db.Model):  # type: ignore[name-defined]  # (mypy sees a variable)
    __tablename__ = "applications"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(NAME_MAX_LENGTH), nullable=False, index=True)
    application_type = db.Column(db.String(32), nullable=False, index=True)
    config = db.Column(
        # json, not jsonb, on PostgreSQL: it keeps key order and accepts any string
        # JSON can carry (jsonb refuses \u0000); config is never queried into.
        db.JSON,
        nullable=True,
    )
    is_active = db.Column(db.Boolean, nullable=False, default=True, index=True)
    remote_object_id = db.Column(db.BigInteger, nullable=True)
    created_by = db.Column(
        db.Integer, db.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    is_visible = db.Column(db.Boolean, nullable=False, default=False)
    is_proxy_available = db.Column(db.Boolean, nullable=False, default=False)
    related_application_id = db.Column(db.String(RELATED_ID_MAX_LENGTH), nullable=True)
    created_date = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    modified_date = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)

    # Every write bumps it, holding the row's lock (service.py).
    version = db.Column(db.Integer, nullable=False, default=1, server_default="1")

    __table_args__ = (
        # related_application_id__iexact compares lower-cased values.
        db.Index(
            "ix_applications_related_application_id_lower", db.func.lower(related_application_id)
        ),
    )


class ApplicationChange(db.Model):  # type: ignore[name-defined]  # (mypy sees a variable)
    """One write to an application: who, when, which request, and the field-level diff."""

    __tablename__ = "application_changes"

    id = db.Column(db.Integer, primary_key=True)
    application_id = db.Column(
        db.Integer, db.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False
    )
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="SET NULL"))
    created_date = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    request_id = db.Column(db.String(128))
    action = db.Column(db.String(16), nullable=False)  # create, replace, update, delete
    # [{"field": "config.web_url", "old": ..., "new": ...}], or {"field", "secret": true}
    changes = db.Column(db.JSON, nullable=False)

    __table_args__ = (db.Index("ix_application_changes_application_id_id", "application_id", "id"),)
