"""Load storage into the DataFrames that ``analytics/`` consumes (the only I/O they need).

Frames are read with plain SQL and converted column-wise, not through ORM objects: a full
recompute reads millions of rows, and per-value Python conversion would dominate it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, column, or_, select, table, text


def _utc(values: pd.Series) -> pd.Series:
    # SQLite returns ISO strings (stored naive, in UTC); PostgreSQL returns aware datetimes.
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = values.dt.tz_convert("UTC")
        return converted
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="ISO8601").astype("datetime64[ns]")


def _start(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def _bind(conn: Connection, value: datetime) -> Any:
    # SQLite stores naive UTC text; compare like with like.
    return value.replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


# Untyped table clauses: rows come back as raw driver values (no per-value ORM processing).
_deals = table(
    "deals",
    *(
        column(c)
        for c in (
            "id",
            "external_id",
            "rep_id",
            "amount",
            "currency",
            "status",
            "stage",
            "probability",
            "created_at",
            "close_date",
            "closed_at",
            "is_deleted",
        )
    ),
)
_activities = table(
    "activities",
    *(column(c) for c in ("id", "rep_id", "type", "occurred_at", "deal_external_id", "is_deleted")),
)


def deals_frame(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    status: str | None = None,
) -> pd.DataFrame:
    """Deals created or closing within [since, until] (every deal when unbounded)."""
    c = _deals.c
    stmt = select(c.id.label("deal_id"), *(col for col in c if col.name != "id")).where(
        c.rep_id.is_not(None)
    )
    if status is not None:
        stmt = stmt.where(c.status == status)
    if since is not None:
        stmt = stmt.where(or_(c.close_date >= since, c.created_at >= _bind(conn, _start(since))))
    if until is not None:
        stmt = stmt.where(
            or_(
                c.close_date <= until, c.created_at < _bind(conn, _start(until + timedelta(days=1)))
            )
        )
    frame = pd.read_sql_query(stmt, conn)
    frame["created_at"] = _utc(frame["created_at"])
    frame["closed_at"] = _utc(frame["closed_at"])
    frame["close_date"] = _dates(frame["close_date"])
    frame["amount"] = frame["amount"].astype("float64")
    frame["probability"] = frame["probability"].astype("float64")
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def activities_frame(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> pd.DataFrame:
    c = _activities.c
    stmt = select(c.id.label("activity_id"), *(col for col in c if col.name != "id")).where(
        c.rep_id.is_not(None)
    )
    if since is not None:
        stmt = stmt.where(c.occurred_at >= _bind(conn, _start(since)))
    if until is not None:
        stmt = stmt.where(c.occurred_at < _bind(conn, _start(until + timedelta(days=1))))
    frame = pd.read_sql_query(stmt, conn)
    frame["occurred_at"] = _utc(frame["occurred_at"])
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def reps_frame(conn: Connection) -> pd.DataFrame:
    frame = pd.read_sql_query(
        text(
            "SELECT id AS rep_id, name, team_id, manager_id, role, is_active, start_date FROM reps"
        ),
        conn,
    )
    frame["start_date"] = _dates(frame["start_date"])
    frame["team_id"] = frame["team_id"].astype("Int64")
    frame["manager_id"] = frame["manager_id"].astype("Int64")
    frame["is_active"] = frame["is_active"].astype(bool)
    return frame


def teams_frame(conn: Connection) -> pd.DataFrame:
    frame = pd.read_sql_query(
        text("SELECT id AS team_id, name, manager_id, parent_id FROM teams"), conn
    )
    frame["manager_id"] = frame["manager_id"].astype("Int64")
    frame["parent_id"] = frame["parent_id"].astype("Int64")
    return frame


def targets_frame(conn: Connection, *, periods: list[str] | None = None) -> pd.DataFrame:
    sql = "SELECT id AS target_id, rep_id, team_id, metric, period, value FROM targets"
    frame = pd.read_sql_query(text(sql), conn)
    if periods is not None:
        frame = frame[frame["period"].isin(periods)]
    frame["rep_id"] = frame["rep_id"].astype("Int64")
    frame["team_id"] = frame["team_id"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    return frame.reset_index(drop=True)
