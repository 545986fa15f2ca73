from ..database import db
from ..db_types import UTCDateTime, utcnow

PREFIX_LENGTH = 8


class User(db.Model):  # type: ignore[name-defined]  # (mypy sees a variable)
    __tablename__ = "users"

    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(150), nullable=False, unique=True)
    is_staff = db.Column(db.Boolean, nullable=False, default=False)
    is_active = db.Column(db.Boolean, nullable=False, default=True)
    created_date = db.Column(UTCDateTime, nullable=False, default=utcnow)


class Token(db.Model):  # type: ignore[name-defined]  # (mypy sees a variable)
    """An API key. Only its SHA-256 digest is stored; the key itself is shown once."""

    __tablename__ = "tokens"

    id = db.Column(db.Integer, primary_key=True)
    key_digest = db.Column(db.String(64), nullable=False, unique=True)
    user_id = db.Column(
        db.Integer, db.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_date = db.Column(UTCDateTime, nullable=False, default=utcnow)
    # the key's first characters, to name a token without its key (list-tokens,
    # revoke-token); null for tokens made before they were kept
    prefix = db.Column(db.String(PREFIX_LENGTH), index=True)
    last_used = db.Column(UTCDateTime)

    user = db.relationship(User)
