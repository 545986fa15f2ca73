"""The list's query arguments → SQLAlchemy: one table of lookups, one of sort keys."""

from sqlalchemy import func, select

from .models import Application

LOOKUPS = {
    "name": lambda value: Application.name == value,
    "application_type": lambda value: Application.application_type == value,
    "is_active": lambda value: Application.is_active.is_(value),
    # LIKE is case-sensitive on PostgreSQL, and on SQLite through the
    # case_sensitive_like pragma (extensions.install_sqlite_pragmas).
    "name__contains": lambda value: Application.name.contains(value, autoescape=True),
    "name__icontains": lambda value: Application.name.icontains(value, autoescape=True),
    "related_application_id__iexact": lambda value: (
        func.lower(Application.related_application_id) == func.lower(value)
    ),
}

SORT_COLUMNS = {
    "id": Application.id,
    "name": Application.name,
    "created_date": Application.created_date,
    "modified_date": Application.modified_date,
}


def filter_conditions(args):
    return [LOOKUPS[key](value) for key, value in args.items() if key in LOOKUPS]


def order_by(sort):
    column = SORT_COLUMNS[sort.lstrip("-")]
    direction = column.desc() if sort.startswith("-") else column.asc()
    # id breaks ties, so pages never overlap or skip rows.
    return (direction,) if column is Application.id else (direction, Application.id.asc())


def page_statements(args, page, limit):
    """(count statement, page statement) for the filtered, sorted list."""
    conditions = filter_conditions(args)
    count = select(func.count()).select_from(Application).where(*conditions)
    # Plain rows, not ORM objects: a page is only read and dumped.
    rows = (
        select(Application.__table__)
        .where(*conditions)
        .order_by(*order_by(args["sort"]))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return count, rows
