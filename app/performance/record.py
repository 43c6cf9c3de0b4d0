"""The coaching record read from the stored coaching rows (:mod:`analytics.coaching_record`):
for the API, the dashboard and the ``rep.coaching_stalled`` alert."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.coaching_record import RecordConfig, coaching_record, current_runs
from analytics.driver_ratios import with_ratios
from analytics.periods import (
    FiscalCalendar,
    PeriodError,
    parse_period,
    period_index,
    period_of,
    shift,
)
from app.core.config import Settings
from app.core.exceptions import InvalidInputError
from app.core.periods import parse
from app.performance import versioning
from app.performance.answers import empty_reason
from app.performance.models import CoachingRow
from app.performance.schemas import (
    CoachingRecordEntry,
    CoachingRecordRead,
    CoachingRun,
    RecordPoint,
)
from app.reps.models import Rep

_BASE = ("rep_id", "period", "period_index", "coaching_focus", "focus_driver")
# The stored figures a ``*_vs_team`` ratio divides (analytics.driver_ratios).
_VS_TEAM_TERMS = ("_value", "_team_median", "revenue", "reference_revenue")


def _vs_team(columns: pd.Index) -> list[str]:
    """The ratios against the team of the drivers (not the focus's copy of one of them)."""
    return [c for c in columns if c.endswith("_vs_team") and not c.startswith("focus_")]


def history(
    session: Session,
    *,
    version: int,
    kind: str,
    cal: FiscalCalendar,
    rep_ids: Collection[int] | None = None,
    until: int | None = None,
) -> pd.DataFrame:
    """The stored coaching rows of ``kind`` (of ``rep_ids``, or every rep), up to period
    index ``until``, as :func:`analytics.coaching_record.coaching_record` reads them: the
    focus and every ``*_vs_team`` figure of the drivers."""
    stmt = select(
        CoachingRow.rep_id, CoachingRow.period, CoachingRow.coaching_focus, CoachingRow.drivers
    ).where(versioning.visible(CoachingRow, version), CoachingRow.period_kind == kind)
    if rep_ids is not None:
        stmt = stmt.where(CoachingRow.rep_id.in_(list(rep_ids)))
    rows = session.execute(stmt).all()
    records: list[dict[str, Any]] = [
        {
            "rep_id": rep_id,
            "period": period,
            "coaching_focus": focus,
            "focus_driver": drivers.get("focus_driver"),
            # Only what the ratios against the team divide: the other figures are not read.
            **{k: v for k, v in drivers.items() if k.endswith(_VS_TEAM_TERMS)},
        }
        for rep_id, period, focus, drivers in rows
    ]
    frame = pd.DataFrame(records, columns=None if records else list(_BASE))
    ratios = with_ratios(frame)
    frame = ratios[[*frame.columns.intersection(list(_BASE)), *_vs_team(ratios.columns)]]
    labels = pd.unique(frame["period"].astype(object))
    starts = pd.Series([parse_period(str(label), cal).start for label in labels])
    index = dict(zip(labels, period_index(starts, kind, cal).tolist(), strict=True))
    frame["period_index"] = frame["period"].map(index).astype("int64")
    for c in ("coaching_focus", "focus_driver"):
        frame[c] = pd.Series(frame[c].to_numpy(dtype=object), dtype=object)
    if until is not None:
        frame = frame[frame["period_index"] <= until]
    return frame.reset_index(drop=True)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _entry(row: dict[str, Any], horizon: int) -> CoachingRecordEntry:
    return CoachingRecordEntry(
        period=row["period"],
        coaching_focus=row["coaching_focus"],
        focus_driver=row["focus_driver"],
        vs_team_then=_float(row["vs_team"]),
        performance_then=_float(row["performance"]),
        followed_by=[
            RecordPoint(
                period=row[f"after_{k}_period"],
                vs_team=_float(row[f"after_{k}_vs_team"]),
                performance=_float(row[f"after_{k}_performance"]),
            )
            for k in range(1, horizon + 1)
            if row[f"after_{k}_period"] is not None
        ],
        change=_float(row["change"]),
        verdict=row["verdict"],
        summary=row["summary"],
    )


def run_of(record: pd.DataFrame, row: dict[str, Any]) -> CoachingRun:
    """The run ending at ``row`` (a row of ``record``), with the driver in each period."""
    rep = record[
        (record["rep_id"] == row["rep_id"])
        & record["period_index"].between(row["run_start_index"], row["period_index"])
    ]
    return CoachingRun(
        period=row["period"],
        coaching_focus=row["coaching_focus"],
        focus_driver=row["focus_driver"],
        since=row["run_start"],
        periods=int(row["run_periods"]),
        points=[
            RecordPoint(period=p, vs_team=_float(v), performance=_float(f))
            for p, v, f in zip(rep["period"], rep["vs_team"], rep["performance"], strict=True)
        ],
        change=_float(row["run_change"]),
        verdict=row["run_verdict"],
        stalled_periods=int(row["stalled_periods"]),
        stalled_since=row["stalled_since"],
        summary=row["run_summary"],
    )


def rep_record(
    *,
    session: Session,
    settings: Settings,
    rep_id: int,
    kind: str,
    periods: int,
    horizon: int,
    end: str | None,
    computed_on: date | None,
) -> CoachingRecordRead:
    """The rep's record: the entries of the ``periods`` periods up to ``end`` (default: the
    current one; its kind wins over ``kind``), each followed ``horizon`` periods, and the run
    going on at the rep's latest period up to ``end``. Periods after ``end`` are not read, so
    a past ``end`` answers the record as it stood then."""
    cal = settings.calendar
    last = parse(end, cal, field="end") if end else period_of(settings.today(), kind, cal)
    kind = last.kind
    try:
        first = shift(last, -(periods - 1), cal)
    except PeriodError as exc:
        message = f"{periods} {kind}s up to {last.label} reach outside the supported dates"
        raise InvalidInputError(
            message, details=[{"field": "periods", "message": message}]
        ) from exc
    until = int(period_index(pd.Series([last.start]), kind, cal)[0])
    version = versioning.current_version(session, computed_on=computed_on)
    rep = session.get(Rep, rep_id)
    assert rep is not None  # the route checked it
    answer = CoachingRecordRead(
        rep_id=rep_id,
        rep_name=rep.name,
        team_id=rep.team_id,
        period_kind=kind,
        first_period=first.label,
        last_period=last.label,
        horizon=horizon,
        items=[],
        current_run=None,
        snapshot=version,
    )
    frame = (
        history(session, version=version, kind=kind, cal=cal, rep_ids=[rep_id], until=until)
        if version is not None
        else pd.DataFrame(columns=list(_BASE))
    )
    record = coaching_record(frame, config=RecordConfig(horizon=horizon))
    shown = record[record["period_index"].to_numpy(dtype=np.int64) > until - periods]
    answer.items = [_entry(r, horizon) for r in rows(shown)]
    runs = rows(current_runs(frame, record))
    answer.current_run = run_of(record, runs[0]) if runs else None
    if not answer.items and answer.current_run is None:
        nothing = (
            f"no coaching focus named for rep {rep_id} in the {kind}s {first.label} to {last.label}"
        )
        answer.reason = empty_reason(version, nothing)
    return answer


def runs_at(
    *, session: Session, settings: Settings, rep_ids: Collection[int], period: str
) -> dict[int, CoachingRun]:
    """The run of the focus named in ``period`` for each of ``rep_ids`` that has one there,
    from the latest snapshot (the dashboard's trend per rep)."""
    version = versioning.current_version(session)
    if version is None or not rep_ids:
        return {}
    cal = settings.calendar
    p = parse(period, cal)
    until = int(period_index(pd.Series([p.start]), p.kind, cal)[0])
    frame = history(session, version=version, kind=p.kind, cal=cal, rep_ids=rep_ids, until=until)
    record = coaching_record(frame)
    return {int(r["rep_id"]): run_of(record, r) for r in rows(record[record["period"] == p.label])}
