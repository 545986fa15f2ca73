"""The list's filters and sort keys, each once: its query argument (the field the
query-args schema is built from) and what it means in SQL."""

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NamedTuple

import marshmallow as ma
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    func,
)
from sqlalchemy.sql.elements import UnaryExpression

from . import pages
from .fields import Text
from .models import APPLICATION_TYPES, Application

TABLE = Application.__table__


def _containing(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, its own % and _ taken literally."""
    return "%" + value.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


class Filter(NamedTuple):
    field: ma.fields.Field  # its query argument
    condition: Callable[[BindParameter[Any]], ColumnElement[bool]]  # given the parameter
    parameter: Callable[[Any], Any] = lambda value: value  # the argument → the parameter


FILTERS: dict[str, Filter] = {
    "name": Filter(
        Text(metadata={"description": "Exact name."}),
        lambda value: TABLE.c.name == value,
    ),
    "application_type": Filter(
        ma.fields.String(
            validate=ma.validate.OneOf(APPLICATION_TYPES), metadata={"description": "Exact type."}
        ),
        lambda value: TABLE.c.application_type == value,
    ),
    "is_active": Filter(
        ma.fields.Boolean(
            truthy={"true", "True", "1"},
            falsy={"false", "False", "0"},
            metadata={"description": "true/false (also True/False/1/0)."},
        ),
        lambda value: TABLE.c.is_active == value,
    ),
    # LIKE is case-sensitive on PostgreSQL, and on SQLite through the
    # case_sensitive_like pragma (database.py). The pattern is the parameter, so the
    # planner sees it (the trigram index serves both).
    "name__contains": Filter(
        Text(metadata={"description": "Case-sensitive substring of the name."}),
        lambda pattern: TABLE.c.name.like(pattern, escape="/"),
        _containing,
    ),
    "name__icontains": Filter(
        Text(metadata={"description": "Case-insensitive substring of the name."}),
        lambda pattern: TABLE.c.name.ilike(pattern, escape="/"),
        _containing,
    ),
    "related_application_id__iexact": Filter(
        Text(metadata={"description": "related_application_id, compared case-insensitively."}),
        lambda value: func.lower(TABLE.c.related_application_id) == func.lower(value),
    ),
}
FILTER_FIELDS = {name: filter_.field for name, filter_ in FILTERS.items()}

SORT_COLUMNS = {name: TABLE.c[name] for name in ("id", "name", "created_date", "modified_date")}


def order_by(sort: str) -> tuple[UnaryExpression[Any], ...]:
    column = SORT_COLUMNS[sort.lstrip("-")]
    direction = column.desc() if sort.startswith("-") else column.asc()
    # id breaks ties, so pages never overlap or skip rows.
    return (direction,) if column is TABLE.c.id else (direction, TABLE.c.id.asc())


def page_query(
    args: Mapping[str, Any], page: int, limit: int
) -> tuple[Select[Any], Select[Any], dict[str, Any]]:
    """The filtered, sorted list's page statement (each row with the `total` of matching
    rows beside it: one round trip), a count statement for a page past the end, and
    their parameters. Statements are built once for each set of filters and sort."""
    names = tuple(sorted(name for name in args if name in FILTERS))
    parameters = {name: FILTERS[name].parameter(args[name]) for name in names}
    page_statement, count_statement = _statements(names, args["sort"])
    return page_statement, count_statement, {**parameters, **pages.window(page, limit)}


@cache
def _statements(names: tuple[str, ...], sort: str) -> tuple[Select[Any], Select[Any]]:
    conditions = [FILTERS[name].condition(bindparam(name)) for name in names]
    return pages.paged(TABLE, conditions, order_by(sort))
