"""The list's filters and sort keys, each once: its query argument (the field the
query-args schema is built from) and what it means in SQL."""

from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.sql.elements import UnaryExpression

from .fields import Text
from .models import APPLICATION_TYPES, Application

TABLE = Application.__table__
Condition = Callable[[Any], ColumnElement[bool]]

# name → (its query argument, its condition)
FILTERS: dict[str, tuple[ma.fields.Field, Condition]] = {
    "name": (
        Text(metadata={"description": "Exact name."}),
        lambda value: TABLE.c.name == value,
    ),
    "application_type": (
        ma.fields.String(
            validate=ma.validate.OneOf(APPLICATION_TYPES), metadata={"description": "Exact type."}
        ),
        lambda value: TABLE.c.application_type == value,
    ),
    "is_active": (
        ma.fields.Boolean(
            truthy={"true", "True", "1"},
            falsy={"false", "False", "0"},
            metadata={"description": "true/false (also True/False/1/0)."},
        ),
        lambda value: TABLE.c.is_active.is_(value),
    ),
    # LIKE is case-sensitive on PostgreSQL, and on SQLite through the
    # case_sensitive_like pragma (database.py).
    "name__contains": (
        Text(metadata={"description": "Case-sensitive substring of the name."}),
        lambda value: TABLE.c.name.contains(value, autoescape=True),
    ),
    "name__icontains": (
        Text(metadata={"description": "Case-insensitive substring of the name."}),
        lambda value: TABLE.c.name.icontains(value, autoescape=True),
    ),
    "related_application_id__iexact": (
        Text(metadata={"description": "related_application_id, compared case-insensitively."}),
        lambda value: func.lower(TABLE.c.related_application_id) == func.lower(value),
    ),
}
FILTER_FIELDS = {name: field for name, (field, _) in FILTERS.items()}

SORT_COLUMNS = {name: TABLE.c[name] for name in ("id", "name", "created_date", "modified_date")}


def filter_conditions(args: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    return [FILTERS[key][1](value) for key, value in args.items() if key in FILTERS]


def order_by(sort: str) -> tuple[UnaryExpression[Any], ...]:
    column = SORT_COLUMNS[sort.lstrip("-")]
    direction = column.desc() if sort.startswith("-") else column.asc()
    # id breaks ties, so pages never overlap or skip rows.
    return (direction,) if column is TABLE.c.id else (direction, TABLE.c.id.asc())


def page_statements(
    args: Mapping[str, Any], page: int, limit: int
) -> tuple[Select[Any], Select[Any]]:
    """(count statement, page statement) for the filtered, sorted list."""
    conditions = filter_conditions(args)
    count = select(func.count()).select_from(TABLE).where(*conditions)
    # Plain rows, not ORM objects: a page is only read and dumped.
    rows = (
        select(TABLE)
        .where(*conditions)
        .order_by(*order_by(args["sort"]))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return count, rows
