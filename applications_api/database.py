"""The database: the models' `db`, engine options, and each request's one connection.

Every request (and every CLI command's app context) uses at most one pooled connection,
owned here: `connection()` checks it out on first use, autocommit, for reads and
single-statement writes; `transaction()` runs a write on that same connection as one
short transaction; `release()` hands it back (at teardown, or before app_proxy waits on
a backend). Nobody else opens or returns connections.
"""

import select
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from flask import Flask, g
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from .settings import Settings

# Objects keep their values after commit (the CLI commands' ORM sessions).
db = SQLAlchemy(session_options={"expire_on_commit": False})
migrate = Migrate()


def init_app(app: Flask, settings: Settings, migrations_dir: str) -> None:
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    db.init_app(app)
    migrate.init_app(app, db, directory=migrations_dir)
    app.teardown_appcontext(release)
    with app.app_context():
        _install_sqlite_pragmas(db.engine)
        _install_liveness_check(db.engine)


def engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy engine options.

    Autocommit: each statement commits by itself, so a read costs its query alone, with
    no BEGIN/ROLLBACK round trips. A write to an application opens its own short
    transaction and locks the row (applications/service.py). Connect and statement
    timeouts bound every wait, so a lost database is a fast 503 and a lock wait a 503.
    No pre-ping (a round trip per request, a fifth of a retrieve): a pooled connection
    is checked without one (_install_liveness_check).
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    if settings.database_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": settings.database_connect_timeout}
    else:
        statement_ms = int(settings.database_statement_timeout * 1000)
        options["connect_args"] = {
            "connect_timeout": max(1, round(settings.database_connect_timeout)),
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
            # Notice a peer that vanished without closing the connection.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": int(settings.database_connect_timeout * 1000),
        }
        options["pool_timeout"] = settings.database_connect_timeout
    return options


def connection() -> Connection:
    """This request's connection: Core statements, outside the ORM session.

    Profiling under load showed the session's bookkeeping as a fifth of a retrieve's
    CPU; requests need none of it. Checked out once, returned by release().
    """
    current: Connection | None = g.get("_database_connection")
    if current is None:
        current = g._database_connection = db.engine.connect()
    return current


def release(exception: BaseException | None = None) -> None:
    """Hand this request's connection back to the pool (a teardown_appcontext handler)."""
    current = g.pop("_database_connection", None)
    if current is not None:
        current.close()


@contextmanager
def transaction() -> Iterator[Connection]:
    """This request's connection inside one short transaction, despite autocommit:
    BEGIN is ours. SQLite's takes the write lock at once (BEGIN IMMEDIATE), so
    concurrent writers queue for the busy timeout rather than fail on an upgrade."""
    current = connection()
    current.exec_driver_sql("BEGIN IMMEDIATE" if is_sqlite(current) else "BEGIN")
    try:
        yield current
    except BaseException:
        with suppress(SQLAlchemyError):  # (a lost connection has nothing to roll back)
            current.exec_driver_sql("ROLLBACK")
        raise
    current.exec_driver_sql("COMMIT")


def is_sqlite(bind: Connection | Engine) -> bool:
    return bind.dialect.name == "sqlite"


def _install_liveness_check(engine: Engine) -> None:
    """Replace a pooled PostgreSQL connection the server has left, at checkout, without a
    round trip: an idle connection has nothing to read unless the server closed it (a
    restart, pg_terminate_backend, a dropped proxy) or said goodbye first. The pool
    then opens a new one. A disconnect noticed later (a peer that vanished silently) is
    one request's 503, and SQLAlchemy renews the whole pool."""
    if is_sqlite(engine):
        return

    @event.listens_for(engine, "checkout")
    def _check_alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.closed or _readable(dbapi_connection.fileno()):
            raise DisconnectionError("the server closed this idle connection")


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _install_sqlite_pragmas(engine: Engine) -> None:
    """Make LIKE case-sensitive on SQLite so name__contains matches the contract."""
    if not is_sqlite(engine):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
