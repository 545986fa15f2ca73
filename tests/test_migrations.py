import os
import warnings

import flask_migrate
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, make_url, text

from applications_api.database import db
from tests.support.app import ON_POSTGRESQL, postgresql_only

FILTER_COLUMNS = ("name", "application_type", "is_active", "created_date", "modified_date")


def index_names(app):
    query = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'applications'",
        "postgresql": "SELECT indexname FROM pg_indexes WHERE tablename = 'applications'",
    }
    with app.app_context():
        return set(db.session.scalars(text(query[db.engine.dialect.name])))


def test_every_filter_and_sort_column_is_indexed(app):
    with app.app_context():
        with warnings.catch_warnings():
            # expression indexes are not reflected; index_names() sees them
            warnings.simplefilter("ignore")
            indexes = inspect(db.engine).get_indexes("applications")
    indexed = {tuple(index["column_names"]) for index in indexes}
    for column in FILTER_COLUMNS:
        assert (column,) in indexed
    assert "ix_applications_related_application_id_lower" in index_names(app)


@postgresql_only
def test_name_icontains_is_served_by_a_trigram_index(app):
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SET enable_seqscan = off"))
            plan = (
                connection.execute(
                    text("EXPLAIN SELECT id FROM applications WHERE name ILIKE '%shop%'")
                )
                .scalars()
                .all()
            )
            iexact = (
                connection.execute(
                    text(
                        "EXPLAIN SELECT id FROM applications "
                        "WHERE lower(related_application_id) = lower('X')"
                    )
                )
                .scalars()
                .all()
            )
    assert "ix_applications_name_trgm" in "\n".join(plan)
    assert "ix_applications_related_application_id_lower" in "\n".join(iexact)


# PostgreSQL's trigram index (migration 0002) lives only in the migrations: a GIN index
# with an operator class, on one database, which the models cannot declare for both.
MIGRATIONS_ONLY = {"ix_applications_name_trgm"}


def drift(app):
    """What autogenerate would change to make the database match the models."""

    def compared(obj, name, type_, reflected, compare_to):
        return name not in MIGRATIONS_ONLY

    with app.app_context(), db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (SQLite cannot reflect expression indexes)
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": compared}
        )
        return compare_metadata(context, db.metadata)


def schema(app):
    with app.app_context():
        inspector = inspect(db.engine)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {
                table: (
                    sorted(column["name"] for column in inspector.get_columns(table)),
                    sorted(index["name"] or "" for index in inspector.get_indexes(table)),
                )
                for table in inspector.get_table_names()
            }


def revision(app):
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_the_models_and_the_migrations_agree(app):
    assert drift(app) == []


def test_upgrading_at_head_changes_nothing(app):
    before = schema(app), revision(app)
    with app.app_context():
        flask_migrate.upgrade()
    assert (schema(app), revision(app)) == before
    assert before[1] == "0005"


@pytest.fixture
def empty_database(make_app, database_url, tmp_path):
    """An app on a database of its own, with no tables yet."""
    if not ON_POSTGRESQL:
        yield make_app(f"sqlite:///{tmp_path / 'round-trip.db'}")
        return
    name = f"applications_round_trip_{os.getpid()}"
    admin = make_url(database_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield make_app(make_url(database_url).set(database=name).render_as_string(False))
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_upgrade_downgrade_upgrade_round_trip(empty_database):
    app = empty_database
    with app.app_context():
        flask_migrate.upgrade()
        at_head = schema(app)
        flask_migrate.downgrade(revision="base")
        assert set(schema(app)) <= {"alembic_version"}
        assert revision(app) is None
        flask_migrate.upgrade()
    assert schema(app) == at_head
    assert revision(app) == "0005"
    assert drift(app) == []
