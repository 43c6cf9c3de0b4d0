"""Keyset pagination on the integer primary key: stable under concurrent inserts, O(page)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.core.schemas import decode_cursor, encode_cursor

T = TypeVar("T")

CursorParam = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omit for the first page.")
]
LimitParam = Annotated[int, Query(ge=1, le=500, description="Page size.")]


def paginate(
    session: Session,
    stmt: Select[T],
    id_column: InstrumentedAttribute[Any],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[T], str | None]:
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(session.scalars(stmt.order_by(None).order_by(id_column).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], id_column.key))
