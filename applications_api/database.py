"""The database: the models' `db`, engine options, and the one door requests run SQL by.

Every request (and every CLI command's app context) uses at most one pooled connection,
owned here: `rows()`, `first()` and `run()` check it out on first use (autocommit: a
read or a single-statement write costs its statement alone); `transaction()` runs a
write on that same connection as one short transaction; `release()` hands it back (at
teardown, or before app_proxy waits on a backend). Nobody else opens or returns
connections on a request's path.

Statements are SQLAlchemy Core, compiled once per dialect and sent straight to the
driver with SQLAlchemy's own type processing: under load, SQLAlchemy's per-execution
machinery (execution context, result metadata, row objects) cost as much client CPU as
the driver itself, for nothing a request needs. Rows come back as plain dicts. Driver
errors become SQLAlchemy's exceptions (api/errors.py maps them to 4xx/503), and a connection
the driver reports lost is invalidated, so the pool never hands it out again.

It stays one module, above the size of the others: it is that single door, and its parts
(the connection a request holds, the transaction on it, the compiled statements, the
driver's errors) each assume the others' invariants.
"""

import logging
import select
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any, NamedTuple

import psycopg
from flask import Flask, g
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Dialect, Engine, Executable, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from .settings import Settings, libpq_url

READ_ONLY_SQL_TRANSACTION = "25006"  # PostgreSQL's SQLSTATE (psycopg's ReadOnlySqlTransaction)

log = logging.getLogger(__name__)

# Objects keep their values after commit (the CLI commands' ORM sessions).
db = SQLAlchemy(session_options={"expire_on_commit": False})
migrate = Migrate()


def init_app(app: Flask, settings: Settings, migrations_dir: str) -> None:
    if settings.database_url.startswith("sqlite"):
        app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    else:
        # libpq reads the URL itself (several hosts, target_session_attrs, service files);
        # SQLAlchemy only needs the dialect.
        app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://"
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    db.init_app(app)
    migrate.init_app(app, db, directory=migrations_dir)
    app.teardown_appcontext(release)
    with app.app_context():
        _install_sqlite_pragmas(db.engine)
        _install_liveness_check(db.engine)
        connector = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("creator")
        if isinstance(connector, PostgreSQLConnector):

            @event.listens_for(db.engine, "connect")
            def _begin_words(_dbapi_connection: Any, record: Any) -> None:
                record.info["begin"] = connector.begin  # what _execute sends for BEGIN


def engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy engine options.

    Autocommit: each statement commits by itself, so a read costs its query alone, with
    no BEGIN/ROLLBACK round trips. A write to an application opens its own short
    transaction and locks the row (applications/service.py). Connect and statement
    timeouts bound every wait, so a lost database is a fast 503 and a lock wait a 503.
    No pre-ping (a round trip per request, a fifth of a retrieve): a pooled connection
    is checked without one (_install_liveness_check).
    """
    # A connection kept for each thread serving requests: with fewer (SQLAlchemy's
    # default is 5), a worker under load opened and closed a connection every second.
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_size": settings.threads}
    if settings.database_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": settings.database_connect_timeout}
    else:
        options["creator"] = PostgreSQLConnector(settings)
        options["pool_timeout"] = settings.database_connect_timeout
    return options


# libpq's TCP keepalives: notice a peer that vanished without closing the connection.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}


class PostgreSQLConnector:
    """Opens the pool's PostgreSQL connections, and finds out once per process whether a
    transaction pooler (PgBouncer's pool_mode = transaction) stands in front of
    PostgreSQL: it refuses the `options` startup parameter, or ignores it.

    Directly, each connection carries the statement and lock timeouts from its start and
    psycopg prepares the statements it runs often. Behind a transaction pooler a session
    is no one's: consecutive transactions land on different server connections, so no
    startup parameter, no prepared statement, and the timeouts travel as SET LOCAL in
    each transaction's BEGIN (_begin). DATABASE_POOLER=transaction says so up front.
    """

    def __init__(self, settings: Settings) -> None:
        self.url = libpq_url(settings.database_url)
        self.lock_ms = int(settings.database_statement_timeout * 1000)
        # A statement gets a tenth longer than a lock wait, so that one waiting for a
        # lock all that time is told a lock timeout (a 503 saying others are writing),
        # whichever of the two timers PostgreSQL would have fired first.
        self.statement_ms = self.lock_ms + max(1, self.lock_ms // 10)
        self.arguments: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(settings.database_connect_timeout)),
            **KEEPALIVES,
            "tcp_user_timeout": int(settings.database_connect_timeout * 1000),
        }
        # None until the first connection tells
        self.pooled: bool | None = True if settings.database_pooler == "transaction" else None

    @property
    def begin(self) -> str:
        """A transaction's first words on this database."""
        if not self.pooled:
            return "BEGIN"
        return (
            f"BEGIN; SET LOCAL lock_timeout = {self.lock_ms};"
            f" SET LOCAL statement_timeout = {self.statement_ms}"
        )

    def __call__(self) -> psycopg.Connection:
        if self.pooled:
            connection = psycopg.connect(self.url, **self.arguments)
            connection.prepare_threshold = None
            return connection
        options = f"-c statement_timeout={self.statement_ms} -c lock_timeout={self.lock_ms}"
        try:
            connection = psycopg.connect(self.url, options=options, **self.arguments)
        except psycopg.OperationalError as error:
            if "unsupported startup parameter" not in str(error):
                raise
            self._found_pooler("it refuses the options startup parameter")
            return self()
        if self.pooled is None:
            applied = connection.execute(
                "SELECT setting FROM pg_settings WHERE name = 'lock_timeout'"
            ).fetchone()
            if applied != (str(self.lock_ms),):
                self._found_pooler("the options startup parameter did not reach the server")
                connection.prepare_threshold = None
                return connection
            self.pooled = False
        return connection

    def _found_pooler(self, why: str) -> None:
        log.info("database: behind a transaction pooler (%s): timeouts set per transaction", why)
        self.pooled = True


Row = dict[str, Any]
_REQUIRED = object()  # a bind parameter the caller must give


class _Compiled(NamedTuple):
    sql: str
    positional: bool  # the driver takes a sequence in `binds` order, not a mapping
    binds: tuple[tuple[str, str, Any, Callable[[Any], Any] | None], ...]
    # (name in the SQL, the caller's key, the statement's own value, bind processor)
    keys: tuple[str, ...]  # result columns
    loaders: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, result processor)


def rows(
    statement: Executable, parameters: Mapping[str, Any] | None = None, *, last: bool = False
) -> list[Row]:
    """Run `statement` on this request's connection; its result rows as dicts. Inside
    transaction(), the first statement is preceded by the BEGIN, and `last` (the write's
    last statement) carries the COMMIT in its round trip on PostgreSQL (psycopg's
    pipeline), so a locked row is let go as soon as its last statement is done."""
    compiled = _compile(statement, db.engine.dialect)
    given = parameters or {}
    values: list[Any] = []
    for _name, key, own, process in compiled.binds:
        value = given[key] if own is _REQUIRED else given.get(key, own)
        values.append(value if process is None else process(value))
    sent = (
        values
        if compiled.positional
        else {bind[0]: value for bind, value in zip(compiled.binds, values, strict=True)}
    )
    current: _Transaction | None = g.get("_transaction")
    begin, commit = None, False
    if current is not None:
        begin, current.begin = current.begin, None
        commit = last and current.open
    driver_rows = _execute(compiled.sql, sent, bool(compiled.keys), begin, commit)
    if current is not None and commit:
        current.open = False  # (a failed statement leaves it open: rolled back)
    found = []
    for driver_row in driver_rows:
        row = list(driver_row)
        for index, load in compiled.loaders:
            row[index] = load(row[index])
        found.append(dict(zip(compiled.keys, row, strict=True)))
    return found


def first(statement: Executable, parameters: Mapping[str, Any] | None = None) -> Row | None:
    found = rows(statement, parameters)
    return found[0] if found else None


def run(sql: str) -> None:
    """Run plain SQL with no parameters and no result (COMMIT, ROLLBACK, SELECT 1)."""
    _execute(sql, ())


class _Transaction:
    """transaction()'s state on this request's connection."""

    def __init__(self, begin: str) -> None:
        self.begin: str | None = begin  # sent just before the first statement
        self.open = True  # not yet committed (by a `last` statement)


@contextmanager
def transaction() -> Iterator[None]:
    """The statements run inside it as one short transaction on this request's
    connection, despite autocommit: BEGIN is ours, sent before the first statement.
    SQLite's takes the write lock at once (BEGIN IMMEDIATE), so concurrent writers queue
    for the busy timeout rather than fail on an upgrade. Inside another, it is part of
    that one (which commits)."""
    if g.get("_transaction") is not None:
        yield
        return
    begin = "BEGIN IMMEDIATE" if is_sqlite(db.engine) else "BEGIN"
    current = g._transaction = _Transaction(begin)
    try:
        yield
        if current.open and current.begin is None:  # (not committed by a `last` statement)
            run("COMMIT")
    except BaseException:
        if current.open and current.begin is None:
            with suppress(SQLAlchemyError):  # (a lost connection has nothing to roll back)
                run("ROLLBACK")
        raise
    finally:
        g.pop("_transaction", None)


def release(exception: BaseException | None = None) -> None:
    """Hand this request's connection back to the pool (a teardown_appcontext handler)."""
    current = g.pop("_database_connection", None)
    if current is not None:
        current.close()


def _connection() -> PoolProxiedConnection:
    current: PoolProxiedConnection | None = g.get("_database_connection")
    if current is None:
        dialect = db.engine.dialect
        try:
            current = g._database_connection = db.engine.raw_connection()
        except dialect.loaded_dbapi.Error as error:  # (could not connect)
            raise _translated(error, None, None, None, None, dialect) from error
    return current


def _execute(
    sql: str,
    parameters: Any,
    fetch: bool = False,
    begin: str | None = None,
    commit: bool = False,
) -> Sequence[Any]:
    """Send `begin` if given, `sql`, then COMMIT if `commit`, on this request's
    connection (`sql` and COMMIT in one round trip on psycopg); the rows of `sql` if
    `fetch`."""
    pooled = _connection()
    dialect = db.engine.dialect
    driver: Any = pooled.dbapi_connection
    # One cursor for the connection's life (the pool forgets it with the connection):
    # a new one per statement set up its type adapters again each time.
    cursor = pooled.info.get("cursor")
    if cursor is None:
        cursor = pooled.info["cursor"] = driver.cursor()
    try:
        if begin:
            _begin(driver, cursor, pooled.info.get("begin", begin))
        if commit and isinstance(driver, psycopg.Connection):
            with driver.pipeline():
                cursor.execute(sql, parameters)
                driver.execute("COMMIT")
            return cursor.fetchall() if fetch else ()
        cursor.execute(sql, parameters)
        found = cursor.fetchall() if fetch else ()
        if commit:
            cursor.execute("COMMIT")
        return found
    except dialect.loaded_dbapi.Error as error:
        raise _translated(error, sql, parameters, pooled, cursor, dialect) from error


def _begin(driver: Any, cursor: Any, begin: str) -> None:
    """`begin` in a round trip of its own, before the first statement asks for a lock.
    On psycopg straight through libpq: carried in psycopg's pipeline with the first
    statement it cost a PATCH 127k instructions more, sent as a statement 73k more."""
    if not isinstance(driver, psycopg.Connection):  # sqlite3
        cursor.execute(begin)
        return
    result = driver.pgconn.exec_(begin.encode())
    if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise psycopg.OperationalError(result.get_error_message())


def _translated(
    error: Any,
    sql: str | None,
    parameters: Any,
    pooled: PoolProxiedConnection | None,
    cursor: Any,
    dialect: Dialect,
) -> DBAPIError:
    """The driver's error as SQLAlchemy raises it; a lost connection is invalidated and
    let go, so this request's next statement (and the pool) gets a fresh one."""
    lost = False
    if pooled is not None and dialect.is_disconnect(error, pooled.dbapi_connection, cursor):
        lost = True
        pooled.invalidate(error)
        g.pop("_database_connection", None)
    translated = DBAPIError.instance(
        sql,
        parameters,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
    )
    assert isinstance(translated, DBAPIError)  # (given a driver error, always)
    return translated


@lru_cache(maxsize=1024)
def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    """`statement` as its driver takes it, with SQLAlchemy's type processing of each
    bind parameter and result column, built once per statement and dialect."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if compiled.insert_prefetch or compiled.update_prefetch:
        # (an execution context computes those; give their values as parameters)
        raise ValueError(f"{statement} relies on Python-side column defaults")
    if compiled.post_compile_params:  # (rendered per execution: IN lists)
        raise ValueError(f"{statement} has parameters rendered per execution")
    names = compiled.positiontup if compiled.positional else list(compiled.binds)
    binds = []
    for name in names or ():
        bind = compiled.binds[name]
        own = _REQUIRED if bind.required else bind.effective_value
        binds.append((name, bind.key, own, bind.type.dialect_impl(dialect).bind_processor(dialect)))
    columns = list(getattr(statement, "exported_columns", ()))
    loaders = []
    for index, column in enumerate(columns):
        load = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if load is not None:
            loaders.append((index, load))
    return _Compiled(
        compiled.string,
        compiled.positional,
        tuple(binds),
        tuple(column.key for column in columns),
        tuple(loaders),
    )


def refuses_writes(error: BaseException) -> bool:
    """Whether the database refused a write because its transaction is read-only: a
    standby met during a failover, until a connection reaches the primary again."""
    orig = getattr(error, "orig", error)
    return getattr(orig, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _install_liveness_check(engine: Engine) -> None:
    """Replace a pooled PostgreSQL connection the server has left, at checkout, without a
    round trip: an idle connection has nothing to read unless the server closed it (a
    restart, pg_terminate_backend, a dropped proxy) or said goodbye first. The pool
    then opens a new one. A disconnect noticed later (a peer that vanished silently) is
    one request's 503, and that connection is invalidated (_translated)."""
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
