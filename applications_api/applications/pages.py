"""Paged reads, as the list and an application's history make them: a page of rows with
the total beside each (one round trip), and the count alone for a page past the end."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, Select, Table, bindparam, func, select


def paged(
    table: Table, conditions: Sequence[ColumnElement[bool]], ordering: Sequence[Any]
) -> tuple[Select[Any], Select[Any]]:
    """A page of `table`'s rows matching `conditions` with the `total` of matching rows
    beside each (the count as a scalar subquery: one round trip), and the count alone,
    for a page past the end. LIMIT and OFFSET are parameters (window())."""
    count = select(func.count().label("total")).select_from(table).where(*conditions)
    page = (
        select(table, count.scalar_subquery().label("total"))
        .where(*conditions)
        .order_by(*ordering)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=BigInteger))  # (page 2**31 - 1 of 1,000 rows)
    )
    return page, count


def window(page: int, size: int) -> dict[str, int]:
    """The LIMIT and OFFSET parameters of page `page`, `size` rows each."""
    return {"limit": size, "offset": (page - 1) * size}
