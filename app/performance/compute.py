"""The compute job: load frames, run ``analytics/``, store a snapshot in one transaction.

Scope. A full compute covers every month, quarter and fiscal year from ``history_months``
before ``as_of`` to the end of the current fiscal year. An incremental compute covers the
periods from the earliest day marked dirty by a sync or import (or, at least, from the
period containing the previous snapshot's ``as_of``, since time passing moves pacing and
closes periods) to the same end; figures outside that scope cannot have changed.
"""

from __future__ import annotations

import time as clock
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from analytics import drivers, gaps, trends
from analytics.metrics import (
    METRIC_COLUMNS,
    cycle_medians,
    month_to_period,
    period_metrics,
    rollup_metrics,
    rollup_periods,
    to_reporting_currency,
    won_cycles,
)
from analytics.periods import (
    FiscalCalendar,
    Period,
    period_from_index,
    period_of,
    periods_between,
    shift,
)
from app import frames
from app.config import Settings
from app.performance import versioning
from app.performance.models import (
    CoachingRow,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    Snapshot,
)

KINDS = ("month", "quarter", "year")
# Drivers pool a year and compare with the rep's own trailing periods before it.
DRIVER_LOOKBACK_MONTHS = 15
WIN_RATE_MONTHS = 12


@dataclass
class Scope:
    periods: dict[str, list[Period]]
    data_start: date
    data_end: date
    dirty_days: list[date] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [p.label for ps in self.periods.values() for p in ps]


def today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.timezone)).date()


def _scope(session: Session, settings: Settings, *, as_of: date, full: bool) -> Scope:
    cal = settings.calendar
    end = period_of(as_of, "year", cal).end
    horizon = period_of(as_of, "month", cal)
    horizon = shift(horizon, -settings.history_months + 1, cal)
    dirty = sorted(session.scalars(select(DirtyDay.day)))
    last = session.scalar(
        select(Snapshot).where(Snapshot.status == "complete").order_by(Snapshot.id.desc())
    )
    start = horizon.start
    if not full and last is not None:
        # A day either side: timestamps are marked by UTC day but counted by local day.
        candidates = [d - timedelta(days=1) for d in dirty] + [min(last.as_of, as_of)]
        start = max(horizon.start, min(candidates))
    periods = {kind: periods_between(start, end, kind, cal) for kind in KINDS}
    first = min(p.start for ps in periods.values() for p in ps)
    win_rate_start = shift(period_of(as_of, "month", cal), -WIN_RATE_MONTHS, cal).start
    data_start = min(
        shift(period_of(first, "month", cal), -DRIVER_LOOKBACK_MONTHS, cal).start,
        win_rate_start,
    )
    return Scope(periods=periods, data_start=data_start, data_end=end, dirty_days=dirty)


def _membership(reps: pd.DataFrame, teams: pd.DataFrame) -> pd.DataFrame:
    """(rep_id, team_id) for each rep's team and every team above it: team figures pool the
    whole tree under a team."""
    parent = dict(zip(teams["team_id"], teams["parent_id"], strict=True))
    pairs: list[tuple[int, int]] = []
    for rep_id, team_id in zip(reps["rep_id"], reps["team_id"], strict=True):
        seen: set[int] = set()
        current = None if pd.isna(team_id) else int(team_id)
        while current is not None and current not in seen:
            seen.add(current)
            pairs.append((int(rep_id), current))
            up = parent.get(current)
            current = None if up is None or pd.isna(up) else int(up)
    return pd.DataFrame(pairs, columns=["rep_id", "team_id"])


def _by_team(frame: pd.DataFrame, membership: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(membership, on="rep_id", how="inner")


def _due(deals: pd.DataFrame, as_of: date) -> npt.NDArray[np.bool_]:
    """Open, live deals with a close date on or after ``as_of``: a superset of the deals
    :func:`analytics.gaps.open_pipeline` counts in any period."""
    close = pd.to_datetime(deals["close_date"]).to_numpy(dtype="datetime64[D]")
    out: npt.NDArray[np.bool_] = (
        deals["status"].eq("open").to_numpy(dtype=bool, na_value=False)
        & ~deals["is_deleted"].to_numpy(dtype=bool)
        & ~np.isnat(close)
        & (close >= np.datetime64(as_of, "D"))
    )
    return out


@dataclass
class Frames:
    deals: pd.DataFrame
    activities: pd.DataFrame
    reps: pd.DataFrame
    teams: pd.DataFrame
    targets: pd.DataFrame
    membership: pd.DataFrame


# The columns the job reads (the frames' other columns are for other callers).
DEAL_COLUMNS = (
    "rep_id",
    "amount",
    "currency",
    "status",
    "probability",
    "created_at",
    "close_date",
    "closed_at",
    "is_deleted",
)
ACTIVITY_COLUMNS = ("rep_id", "type", "occurred_at", "is_deleted")


def load(session: Session, scope: Scope) -> Frames:
    conn = session.connection()
    reps = frames.reps_frame(conn)
    teams = frames.teams_frame(conn)
    return Frames(
        deals=frames.deals_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=DEAL_COLUMNS,
            categorical=True,
        ),
        activities=frames.activities_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=ACTIVITY_COLUMNS,
            categorical=True,
        ),
        reps=reps,
        teams=teams,
        targets=frames.targets_frame(conn, periods=scope.labels),
        membership=_membership(reps, teams),
    )


def _all_metrics(f: Frames, settings: Settings) -> dict[str, pd.DataFrame]:
    """Rep and team metrics of every period kind, with subject_type / subject_id.

    One pass over the records: the monthly rep figures. Everything else is rolled up from
    them (quarters and years are unions of fiscal months; a team pools its members' rows,
    see :func:`rollup_metrics`), except the median sales cycle, which takes the won deals
    of each quarter, year and team (a small frame) rather than the members' medians.
    """
    cal = settings.calendar
    rep_month = period_metrics(
        f.deals,
        f.activities,
        kind="month",
        cal=cal,
        rates=settings.currency_rates,
        tz=settings.timezone,
        key="rep_id",
    )
    rep_won = won_cycles(f.deals, kind="month", cal=cal, tz=settings.timezone, key="rep_id")
    team_won = rep_won.merge(f.membership, on="rep_id", how="inner").drop(columns="rep_id")
    out: dict[str, pd.DataFrame] = {}
    for kind in KINDS:
        rep_cycles = cycle_medians(_won_in(rep_won, kind, cal), key="rep_id")
        team_cycles = cycle_medians(_won_in(team_won, kind, cal), key="team_id")
        rep = (
            rep_month
            if kind == "month"
            else rollup_periods(rep_month, kind=kind, cal=cal, key="rep_id", cycles=rep_cycles)
        )
        team = rollup_metrics(
            rep, f.membership, kind=kind, key="rep_id", to_key="team_id", cycles=team_cycles
        )
        out[kind] = _with_subjects(rep, team, settings, kind)
    return out


def _won_in(won: pd.DataFrame, kind: str, cal: FiscalCalendar) -> pd.DataFrame:
    """A monthly :func:`won_cycles` frame with its periods mapped to ``kind``."""
    if kind == "month":
        return won
    return won.assign(period_index=month_to_period(won["period_index"].to_numpy(), kind, cal))


def _with_subjects(
    rep: pd.DataFrame, team: pd.DataFrame, settings: Settings, kind: str
) -> pd.DataFrame:
    rep = rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    team = team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    out = pd.concat([rep, team], ignore_index=True).assign(period_kind=kind)
    starts = {
        i: period_from_index(kind, i, settings.calendar).start
        for i in pd.unique(out["period_index"])
    }
    out["period_start"] = out["period_index"].map(starts)
    return out


def run(
    *,
    session: Session,
    settings: Settings,
    as_of: date | None = None,
    full: bool = False,
    trigger: str = "manual",
) -> Snapshot:
    """Compute and store a new snapshot; everything happens in the caller's transaction."""
    started = clock.perf_counter()
    as_of = as_of or today(settings)
    scope = _scope(session, settings, as_of=as_of, full=full)
    snapshot = Snapshot(
        status="building",
        kind="full" if full else "incremental",
        trigger=trigger,
        as_of=as_of,
        periods=scope.labels,
    )
    session.add(snapshot)
    session.flush()
    f = load(session, scope)
    timings: dict[str, float] = {"load": clock.perf_counter() - started}
    cal = settings.calendar

    t = clock.perf_counter()
    metrics = _all_metrics(f, settings)
    timings["metrics"] = clock.perf_counter() - t

    t = clock.perf_counter()
    in_scope = {kind: {p.label for p in scope.periods[kind]} for kind in KINDS}
    all_periods = [p for ps in scope.periods.values() for p in ps]
    # Only open deals due from as_of on can count (open_pipeline's own rule): the team
    # merge then copies those few rather than every deal.
    due = f.deals[_due(f.deals, as_of)]
    rep_pipeline = gaps.open_pipeline(
        due, periods=all_periods, as_of=as_of, rates=settings.currency_rates, key="rep_id"
    )
    team_pipeline = gaps.open_pipeline(
        _by_team(due, f.membership),
        periods=all_periods,
        as_of=as_of,
        rates=settings.currency_rates,
        key="team_id",
    )
    pipeline = _subjects(rep_pipeline, team_pipeline)
    monthly = metrics["month"]
    win_rates = _subjects(
        gaps.trailing_win_rate(
            monthly[monthly["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="rep_id",
        ),
        gaps.trailing_win_rate(
            monthly[monthly["subject_type"] == "team"].rename(columns={"subject_id": "team_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="team_id",
        ),
    )
    actuals = pd.concat([m[m["period"].isin(in_scope[k])] for k, m in metrics.items()])
    config = gaps.GapConfig(
        as_of=as_of,
        cal=cal,
        pacing=settings.pacing,
        holidays=tuple(settings.holidays),
        on_track_min=settings.status_on_track_min,
        ramp_schedule=tuple(settings.ramp_schedule),
    )
    seasonal = settings.pacing == "seasonal"
    shares = _seasonal_shares(session, settings, f, as_of) if seasonal else None
    gap_rows = gaps.compute_gaps(
        f.targets,
        actuals,
        reps=f.reps,
        pipeline=pipeline,
        win_rates=win_rates,
        config=config,
        shares=shares,
    )
    gap_rows = _with_streaks(session, gap_rows, scope)
    timings["gaps"] = clock.perf_counter() - t

    t = clock.perf_counter()
    coaching = _coaching(metrics, f.reps, in_scope)
    timings["drivers"] = clock.perf_counter() - t

    t = clock.perf_counter()
    version = snapshot.id
    scope_filter_perf = PerformanceRow.period.in_(scope.labels)
    written = versioning.write(
        session,
        PerformanceRow,
        version=version,
        key=("subject_type", "rep_id", "team_id", "metric", "period"),
        rows=_performance_rows(gap_rows),
        scope=scope_filter_perf,
    )
    written += versioning.write(
        session,
        MetricRow,
        version=version,
        key=("subject_type", "subject_id", "period"),
        rows=_metric_rows(actuals),
        scope=MetricRow.period.in_(scope.labels),
    )
    written += versioning.write(
        session,
        CoachingRow,
        version=version,
        key=("rep_id", "period"),
        rows=coaching,
        scope=CoachingRow.period.in_(scope.labels),
    )
    if scope.dirty_days:
        session.execute(delete(DirtyDay).where(DirtyDay.day.in_(scope.dirty_days)))
    keep = session.scalar(
        select(Snapshot.id)
        .where(
            Snapshot.computed_at
            >= snapshot.computed_at - timedelta(days=settings.snapshot_retention_days)
        )
        .order_by(Snapshot.id)
    )
    if keep is not None:
        versioning.purge(session, keep_from_version=keep)
    timings["write"] = clock.perf_counter() - t

    snapshot.status = "complete"
    snapshot.rows_written = written
    snapshot.duration_ms = int((clock.perf_counter() - started) * 1000)
    snapshot.details = {
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "deals": len(f.deals),
        "activities": len(f.activities),
        "dirty_days": len(scope.dirty_days),
    }
    session.flush()
    return snapshot


def _seasonal_shares(session: Session, settings: Settings, f: Frames, as_of: date) -> pd.DataFrame:
    """Each team's learned booking curve, from two years of its won deals; a rep is paced on
    their team's curve (one rep's own history is too thin to learn a shape from)."""
    since = as_of - timedelta(days=2 * 366 + 92)
    won = frames.deals_frame(
        session.connection(),
        since=since,
        until=as_of,
        status="won",
        columns=("rep_id", "amount", "currency", "close_date", "is_deleted"),
        categorical=True,
    )
    won = won[~won["is_deleted"]]
    won = won.assign(
        value=to_reporting_currency(won["amount"], won["currency"], settings.currency_rates)
    )
    won = _by_team(won, f.membership)[["team_id", "close_date", "value"]]
    curves = pd.concat(
        [
            gaps.seasonal_shares(won, kind=kind, cal=settings.calendar, as_of=as_of, key="team_id")
            for kind in ("month", "quarter")
        ],
        ignore_index=True,
    )
    team_curves = curves.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    rep_teams = f.reps[["rep_id", "team_id"]].dropna()
    rep_curves = rep_teams.merge(curves, on="team_id").drop(columns="team_id")
    rep_curves = rep_curves.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    return pd.concat([team_curves, rep_curves], ignore_index=True)


def _subjects(rep: pd.DataFrame, team: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep"),
            team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team"),
        ],
        ignore_index=True,
    )


def _with_streaks(session: Session, rows: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """consecutive_misses per row, counting the stored statuses of the periods before scope."""
    rows = rows.copy()
    if rows.empty:
        return rows.assign(consecutive_misses=pd.Series(dtype="int64"))
    cols = ["subject_type", "rep_id", "team_id", "metric", "period", "status"]
    # Every stored period outside the scope: a run can pass through months that an
    # incremental compute does not revisit.
    prior = pd.DataFrame(
        session.execute(
            select(*(getattr(PerformanceRow, c) for c in cols)).where(
                PerformanceRow.valid_to.is_(None), PerformanceRow.period.not_in(scope.labels)
            )
        ).all(),
        columns=cols,
    )
    history = pd.concat([prior, rows[cols]], ignore_index=True)
    for col in ("rep_id", "team_id"):
        history[col] = history[col].astype("Int64")
    streak = trends.misses_by_period(history, key=["subject_type", "rep_id", "team_id"])
    rows["consecutive_misses"] = streak.to_numpy()[len(prior) :]
    return rows


def _clean_columns(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[Any]]:
    """Each column's values as ``versioning.clean`` makes them (numpy -> Python, NaN -> None),
    as ``clean(record.get(column))`` over ``frame.to_dict("records")`` would give them, but
    converted a column at a time (``tolist``) rather than value by value."""
    n = len(frame)
    out: dict[str, list[Any]] = {}
    for name in columns:
        if name not in frame:
            out[name] = [None] * n
            continue
        series = frame[name]
        kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
        if kind == "f":
            array = series.to_numpy()
            values = array.tolist()
            for i in np.flatnonzero(np.isnan(array)).tolist():
                values[i] = None
        elif kind in "iub":
            values = series.tolist()
        else:  # objects and extension types: to_dict boxes a missing pd.NA as None
            values = [None if v is pd.NA else versioning.clean(v) for v in series.tolist()]
        out[name] = values
    return out


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _performance_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [
        c.key
        for c in PerformanceRow.__table__.columns
        if c.key not in {"id", "valid_from", "valid_to", "details"}
    ]
    values = _clean_columns(rows, cols)
    for c in ("rep_id", "team_id", "target_id"):
        values[c] = [None if v is None or pd.isna(v) else int(v) for v in values[c]]
    for c in ("period_start", "period_end"):
        days = {v: pd.Timestamp(v).date() for v in set(values[c])}
        values[c] = [days[v] for v in values[c]]
    values["consecutive_misses"] = [int(v or 0) for v in values["consecutive_misses"]]
    out = _records(values)
    for row in out:
        row["details"] = {}
    return out


def _metric_rows(actuals: pd.DataFrame) -> list[dict[str, Any]]:
    metric_values = _records(_clean_columns(actuals, METRIC_COLUMNS))
    return _records(
        {
            "subject_type": actuals["subject_type"].tolist(),
            "subject_id": [int(v) for v in actuals["subject_id"].tolist()],
            "period": actuals["period"].tolist(),
            "period_kind": actuals["period_kind"].tolist(),
            "period_start": actuals["period_start"].tolist(),
            "values": metric_values,
        }
    )


def _coaching(
    metrics: dict[str, pd.DataFrame], reps: pd.DataFrame, in_scope: dict[str, set[str]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in ("month", "quarter"):
        m = metrics[kind]
        rep_metrics = m[m["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"})
        # Quarters: a year of quarters against the quarter before it, within 15 months of data.
        config = (
            drivers.DriverConfig() if kind == "month" else drivers.DriverConfig(trailing_periods=1)
        )
        table = drivers.driver_table(rep_metrics, reps, config=config)
        table = table[table["period"].isin(in_scope[kind])]
        names = [str(c) for c in table.columns]
        values = _clean_columns(table, names)
        fixed = {"rep_id", "period", "coaching_focus", "focus_reason"}
        driver_values = _records({k: v for k, v in values.items() if k not in fixed})
        if not driver_values:  # no driver columns at all: one empty dict per row
            driver_values = [{} for _ in range(len(table))]
        out.extend(
            _records(
                {
                    "rep_id": [int(v) for v in table["rep_id"].tolist()],
                    "period": table["period"].tolist(),
                    "period_kind": [kind] * len(table),
                    "coaching_focus": [
                        None if focus is None or pd.isna(focus) else str(focus)
                        for focus in values["coaching_focus"]
                    ],
                    "focus_reason": values["focus_reason"],
                    "drivers": driver_values,
                }
            )
        )
    return out
