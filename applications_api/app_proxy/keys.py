"""Each application's signing keys, in versions with a lifecycle: which keys sign its
requests now, the rotation that makes the next one, and the public keys a backend
fetches (a JWKS, RFC 7517).

A key version is a row of `signing_keys`: its number, algorithm (`hmac-sha256` or
`ed25519`), the id of the deployment secret it is derived from (signing.derive: the
database holds no key), and its times. Its state follows from them:

- `next`: published (the JWKS lists it, `app-proxy-key` prints it), not signing yet;
- `signing`: from `signs_from` until `retires_at`;
- `retired`: from `retires_at` on; never used or published again.

An application's first key is recorded the first time anything uses it (a proxied
request, `app-proxy-key`, its JWKS): with the deployment's algorithm and current
secret, so that a later change of either never changes a key a backend already holds.

A rotation publishes the next key at once and signs with it PUBLISH_AHEAD later (a
JWKS's lifetime in caches); from then on both keys sign until the grace period ends.
`--now` (a leaked key) signs with the next key at once and retires the others.

Rows change through the CLI or plain SQL; the change feed (cache.py, migration 0005's
trigger) tells every worker, which then drops its cached set of versions.
"""

import hashlib
import json
import logging
from base64 import urlsafe_b64encode
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from .. import database
from ..applications.models import Application
from ..database import db
from ..db_types import UTCDateTime, utcnow
from ..runtime import current_settings, runtime
from ..settings import Settings
from . import signing

log = logging.getLogger(__name__)

JWKS_MAX_AGE = 300  # seconds a JWKS may be cached (Cache-Control)
PUBLISH_AHEAD = timedelta(seconds=JWKS_MAX_AGE)  # a next key is published that long first
DEFAULT_GRACE_HOURS = 24
MAX_GRACE_HOURS = 7 * 24
NEXT, SIGNING, RETIRED = "next", "signing", "retired"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SigningKeyVersion(db.Model):  # type: ignore[name-defined]  # (mypy sees a variable)
    __tablename__ = "signing_keys"

    id = db.Column(db.Integer, primary_key=True)
    application_id = db.Column(
        db.Integer, db.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False
    )
    version = db.Column(db.Integer, nullable=False)
    algorithm = db.Column(db.String(16), nullable=False)
    secret_id = db.Column(db.String(16), nullable=False)
    created_date = db.Column(UTCDateTime, nullable=False)
    signs_from = db.Column(UTCDateTime, nullable=False)
    retires_at = db.Column(UTCDateTime, nullable=True)

    __table_args__ = (
        db.UniqueConstraint(
            "application_id", "version", name="uq_signing_keys_application_id_version"
        ),
    )


TABLE = SigningKeyVersion.__table__
VERSIONS_OF = (
    select(TABLE).where(TABLE.c.application_id == bindparam("app_id")).order_by(TABLE.c.version)
)
_NEW_VERSION = {
    "application_id": bindparam("app_id"),
    "version": bindparam("version"),
    "algorithm": bindparam("algorithm"),
    "secret_id": bindparam("secret_id"),
    "created_date": bindparam("created_date", type_=UTCDateTime()),
    "signs_from": bindparam("signs_from", type_=UTCDateTime()),
}
INSERT = TABLE.insert().values(_NEW_VERSION)
# Two workers may record an application's first key at once: the first one wins.
RECORD_FIRST = {
    dialect: module.insert(TABLE)
    .values(_NEW_VERSION)
    .on_conflict_do_nothing(index_elements=["application_id", "version"])
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
RETIRE = (
    TABLE.update()
    .where(TABLE.c.application_id == bindparam("app_id"), TABLE.c.version == bindparam("version"))
    .values(retires_at=bindparam("retires_at", type_=UTCDateTime()))
)


def secret_id(secret: str) -> str:
    """Names a deployment secret in the rows derived from it, without revealing it."""
    return signing.derive(secret, "deployment secret id", signing.HMAC_SHA256)[:8].hex()


@lru_cache(maxsize=8)
def _secrets(current: str, previous: str) -> dict[str, str]:
    known = {secret_id(current): current}
    if previous:
        known.setdefault(secret_id(previous), previous)
    return known


def known_secrets(settings: Settings) -> dict[str, str]:
    """secret id → secret: APP_PROXY_SIGNING_KEY and APP_PROXY_PREVIOUS_SIGNING_KEY."""
    return _secrets(settings.proxy_signing_key, settings.proxy_previous_signing_key)


def key_id(app_id: int, version: int) -> str:
    return f"application-{app_id}" if version == 1 else f"application-{app_id}.v{version}"


@dataclass(frozen=True)
class KeyVersion:
    app_id: int
    version: int
    algorithm: str
    secret_id: str
    created: datetime
    signs_from: datetime
    retires_at: datetime | None

    @property
    def key_id(self) -> str:
        return key_id(self.app_id, self.version)

    def state(self, now: datetime) -> str:
        if self.retires_at is not None and now >= self.retires_at:
            return RETIRED
        return NEXT if now < self.signs_from else SIGNING

    def key(self, secrets: dict[str, str]) -> signing.SigningKey | None:
        """This version's key, or None when its secret is no longer configured."""
        secret = secrets.get(self.secret_id)
        if secret is None:
            return None
        return signing.signing_key(secret, self.key_id, self.algorithm)

    @classmethod
    def of(cls, row: database.Row) -> "KeyVersion":
        return cls(
            row["application_id"],
            row["version"],
            row["algorithm"],
            row["secret_id"],
            row["created_date"],
            row["signs_from"],
            row["retires_at"],
        )


def versions(app_id: int) -> tuple[KeyVersion, ...]:
    """Application `app_id`'s key versions, oldest first (its first key recorded if it
    was not). Cached until an application or a key changes (cache.py) or
    APP_PROXY_CACHE_SECONDS pass; states are worked out from the times on each use."""
    cache = runtime().proxy_keys
    found = cache.get(app_id)
    if found is None:
        generation = cache.generation()
        found = read_versions(app_id)
        cache.put(app_id, found, generation)
    return found


def read_versions(app_id: int) -> tuple[KeyVersion, ...]:
    """versions(), from the database."""
    rows = database.rows(VERSIONS_OF, {"app_id": app_id})
    if not rows:
        settings = current_settings()
        now = utcnow()
        with database.transaction():  # (where its lock wait is bounded behind a pooler too)
            database.rows(
                RECORD_FIRST[database.db.engine.dialect.name],
                {
                    "app_id": app_id,
                    "version": 1,
                    "algorithm": settings.proxy_signing_algorithm,
                    "secret_id": secret_id(settings.proxy_signing_key),
                    "created_date": now,
                    # it signed before it was recorded (and a server whose clock is behind
                    # must not see it as a next key)
                    "signs_from": EPOCH,
                },
            )
        rows = database.rows(VERSIONS_OF, {"app_id": app_id})
    return tuple(KeyVersion.of(row) for row in rows)


def signing_keys(app_id: int) -> tuple[signing.SigningKey, ...]:
    """The keys application `app_id`'s requests are signed with now (one, or two during a
    rotation's grace period); none when the secret of every one is gone."""
    now = utcnow()
    secrets = known_secrets(current_settings())
    keys = []
    for version in versions(app_id):
        if version.state(now) != SIGNING:
            continue
        key = version.key(secrets)
        if key is None:
            log.warning(
                "app_proxy %s: cannot sign with %s: its deployment secret (id %s) is "
                "not configured",
                app_id,
                version.key_id,
                version.secret_id,
            )
            continue
        keys.append(key)
    return tuple(keys)


# -- the JWKS -------------------------------------------------------------------------


def jwks(app_id: int) -> bytes:
    """Application `app_id`'s published public keys (its ed25519 versions not retired),
    as a JSON Web Key Set: `kid` is each signature's keyid."""
    now = utcnow()
    secrets = known_secrets(current_settings())
    keys = []
    for version in versions(app_id):
        if version.algorithm != signing.ED25519 or version.state(now) == RETIRED:
            continue
        key = version.key(secrets)
        if key is not None:
            keys.append(jwk(key))
    return json.dumps({"keys": keys}, separators=(",", ":")).encode()


def jwk(key: signing.SigningKey) -> dict[str, str]:
    """An Ed25519 public key as a JWK (RFC 8037)."""
    x = urlsafe_b64encode(key.public_bytes()).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.key_id, "alg": "EdDSA", "use": "sig"}


def etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


# -- the operator's commands (app_proxy/cli.py) -----------------------------------------


class RotationRefused(Exception):
    pass


def rotate(
    app_id: int, grace: timedelta, at_once: bool, algorithm: str | None = None
) -> tuple[KeyVersion, list[KeyVersion]]:
    """Make application `app_id`'s next key version (in its current algorithm unless
    `algorithm`), derived from the current deployment secret: published now, signing
    after PUBLISH_AHEAD beside the current key, which retires `grace` later; or,
    `at_once`, signing now, every other version retired now. Returns the new version
    and the versions it retires. Raises RotationRefused for an application that does
    not exist, or that is rotating already (unless `at_once`)."""
    now = utcnow()
    with database.transaction():
        if not database.first(
            _LOCKED_APPLICATION[database.db.engine.dialect.name], {"app_id": app_id}
        ):
            raise RotationRefused(f"application {app_id} does not exist")
        current = read_versions(app_id)
        live = [version for version in current if version.state(now) != RETIRED]
        if len(live) > 1 and not at_once:
            raise RotationRefused(
                f"application {app_id} is rotating already ("
                f"{', '.join(version.key_id for version in live)} not retired): wait for "
                "the grace period to end, or rotate --now"
            )
        signs_from = now if at_once else now + PUBLISH_AHEAD
        retires_at = now if at_once else signs_from + grace
        retiring = [replace(version, retires_at=retires_at) for version in live]
        new = KeyVersion(
            app_id,
            current[-1].version + 1,
            algorithm or current[-1].algorithm,
            secret_id(current_settings().proxy_signing_key),
            now,
            signs_from,
            None,
        )
        for version in retiring:
            database.rows(
                RETIRE, {"app_id": app_id, "version": version.version, "retires_at": retires_at}
            )
        database.rows(
            INSERT,
            {
                "app_id": app_id,
                "version": new.version,
                "algorithm": new.algorithm,
                "secret_id": new.secret_id,
                "created_date": now,
                "signs_from": signs_from,
            },
            last=True,
        )
    return new, retiring


def application_ids() -> list[int]:
    return [row["id"] for row in database.rows(_APPLICATION_IDS)]


def exists(app_id: int) -> bool:
    """Whether application `app_id` exists (deleted or not: its keys are still its own)."""
    return database.first(_APPLICATION, {"app_id": app_id}) is not None


_APPLICATION_IDS = select(Application.__table__.c.id).order_by(Application.__table__.c.id)
_APPLICATION = select(Application.__table__.c.id).where(
    Application.__table__.c.id == bindparam("app_id")
)
# A rotation holds the application's row (SQLite: BEGIN IMMEDIATE holds the database).
_LOCKED_APPLICATION = {"postgresql": _APPLICATION.with_for_update(), "sqlite": _APPLICATION}
