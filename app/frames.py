"""Load storage into the DataFrames that ``analytics/`` consumes (the only I/O they need)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from sqlalchemy import Connection, or_, select

from app.activities.models import Activity
from app.deals.models import Deal

DEAL_COLUMNS = [
    Deal.id,
    Deal.rep_id,
    Deal.amount,
    Deal.currency,
    Deal.status,
    Deal.stage,
    Deal.probability,
    Deal.created_at,
    Deal.close_date,
    Deal.closed_at,
    Deal.is_deleted,
]
ACTIVITY_COLUMNS = [
    Activity.id,
    Activity.rep_id,
    Activity.type,
    Activity.occurred_at,
    Activity.is_deleted,
]


def _utc(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for col in cols:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def deals_frame(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> pd.DataFrame:
    """Deals created or closing within [since, until] (all of them when unbounded)."""
    stmt = select(*DEAL_COLUMNS).where(Deal.rep_id.is_not(None))
    if since is not None:
        stmt = stmt.where(or_(Deal.close_date >= since, Deal.created_at >= _start(since)))
    if until is not None:
        stmt = stmt.where(
            or_(Deal.close_date <= until, Deal.created_at < _start(until, next_day=True))
        )
    frame = pd.read_sql(stmt, conn)
    frame = _utc(frame, "created_at", "closed_at")
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def activities_frame(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> pd.DataFrame:
    stmt = select(*ACTIVITY_COLUMNS).where(Activity.rep_id.is_not(None))
    if since is not None:
        stmt = stmt.where(Activity.occurred_at >= _start(since))
    if until is not None:
        stmt = stmt.where(Activity.occurred_at < _start(until, next_day=True))
    frame = _utc(pd.read_sql(stmt, conn), "occurred_at")
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def _start(d: date, *, next_day: bool = False) -> datetime:
    ts = pd.Timestamp(d, tz="UTC") + pd.Timedelta(days=1 if next_day else 0)
    return ts.to_pydatetime()
