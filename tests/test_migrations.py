import warnings

from sqlalchemy import inspect, text

from applications_api.database import db
from tests.support.app import postgresql_only

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
