from sqlalchemy import inspect, text

from applications_api.extensions import db
from tests.conftest import postgresql_only

FILTER_COLUMNS = ("name", "application_type", "is_active", "created_date", "modified_date")


def test_every_filter_and_sort_column_is_indexed(app):
    with app.app_context():
        indexes = inspect(db.engine).get_indexes("applications")
    indexed = {tuple(index["column_names"]) for index in indexes}
    for column in FILTER_COLUMNS:
        assert (column,) in indexed
    names = {index["name"] for index in indexes}
    assert "ix_applications_related_application_id_lower" in names


@postgresql_only
def test_name_icontains_is_served_by_a_trigram_index(app):
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SET enable_seqscan = off"))
            plan = connection.execute(
                text("EXPLAIN SELECT id FROM applications WHERE name ILIKE '%shop%'")
            ).scalars().all()
            iexact = connection.execute(
                text("EXPLAIN SELECT id FROM applications "
                     "WHERE lower(related_application_id) = lower('X')")
            ).scalars().all()
    assert "ix_applications_name_trgm" in "\n".join(plan)
    assert "ix_applications_related_application_id_lower" in "\n".join(iexact)
