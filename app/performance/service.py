"""Reading results: every answer comes from one snapshot version, named in the answer."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import rollups, trends
from analytics.driver_list import ranked_drivers
from analytics.driver_ratios import completed
from analytics.metrics import METRICS
from analytics.path_to_target import PATH_METRICS
from analytics.periods import period_index, period_of
from app.auth.service import Principal
from app.core.config import Settings
from app.core.exceptions import InvalidInputError, NotFoundError
from app.core.periods import parse
from app.performance import ranks, versioning
from app.performance.models import (
    CoachingRow,
    MetricRow,
    PerformanceRow,
    ReportedDriverRow,
    Snapshot,
)
from app.performance.reads import (
    RepName,
    float_or_none,
    formula_inputs,
    int_or_none,
    page_cursor,
    parse_cursor,
    path_of,
    reads,
    rep_names,
    rollup_frame,
    team_of,
    to_read,
)
from app.performance.schemas import (
    CoachingRead,
    DriverEntry,
    LeaderboardEntry,
    LeaderboardRead,
    PathToTarget,
    PerformanceRead,
    SnapshotRead,
    TeamPerformanceRead,
    TeamRollupRow,
    TrendRead,
)
from app.performance.store import DRIVER_KEYS, REPORTED_FIGURES
from app.reps.models import Rep
from app.teams import tree as team_tree
from app.teams.models import Team

SORTABLE = ("attainment", "gap", "actual", "pace_gap", "projected", "rep_name", "status")


def snapshot(session: Session, version: int | None) -> SnapshotRead | None:
    if version is None:
        return None
    snap = session.get(Snapshot, version)
    return SnapshotRead.model_validate(snap) if snap else None


def version_for(session: Session, computed_on: date | None) -> int | None:
    """The snapshot a read answers from: the latest, or the latest computed by the end of
    ``computed_on``."""
    return versioning.current_version(session, computed_on=computed_on)


def default_period(settings: Settings, kind: str = "month") -> str:
    return period_of(settings.today(), kind, settings.calendar).label


def list_performance(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    metric: str | None,
    team_id: int | None,
    manager_id: int | None,
    status: str | None,
    subject_type: str,
    sort: str,
    cursor: str | None,
    limit: int,
    computed_on: date | None,
) -> tuple[list[PerformanceRead], str | None, int | None]:
    offset, pinned = parse_cursor(cursor)
    version = pinned or version_for(session, computed_on)
    if version is None:
        return [], None, None
    label = parse(period, settings.calendar).label if period else default_period(settings)
    stmt = select(PerformanceRow).where(
        versioning.visible(PerformanceRow, version),
        PerformanceRow.period == label,
        PerformanceRow.subject_type == subject_type,
    )
    if metric:
        stmt = stmt.where(PerformanceRow.metric == metric)
    if status:
        stmt = stmt.where(PerformanceRow.status == status)
    rows = list(session.scalars(stmt))
    # The status filter narrows the rows read; ranks still compare with every rep.
    names = rep_names(session, label, settings.calendar)
    items = reads(session, version, rows, names=names, whole_population=status is None)
    items = [
        i
        for i in items
        if (team_id is None or i.team_id == team_id)
        and (manager_id is None or i.manager_id == manager_id)
        and (
            principal.can_see_rep(i.rep_id)
            if i.subject_type == "rep"
            else principal.can_see_team(i.team_id)
        )
    ]
    items = _sorted(items, sort)
    page = items[offset : offset + limit]
    next_cursor = page_cursor(offset + limit, version) if offset + limit < len(items) else None
    return page, next_cursor, version


def _sorted(items: list[PerformanceRead], sort: str) -> list[PerformanceRead]:
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in SORTABLE:
        raise InvalidInputError(
            f"cannot sort by {key!r}",
            details=[{"field": "sort", "message": f"one of {', '.join(SORTABLE)}, '-' for desc"}],
        )
    present = [i for i in items if getattr(i, key) is not None]
    missing = [i for i in items if getattr(i, key) is None]
    present.sort(key=lambda i: (getattr(i, key), i.rep_name or "", i.metric), reverse=desc)
    return present + missing


def rep_history(
    *,
    session: Session,
    settings: Settings,
    rep_id: int,
    metric: str | None,
    kind: str,
    start: str | None,
    end: str | None,
    computed_on: date | None,
) -> tuple[list[PerformanceRead], int | None]:
    version = version_for(session, computed_on)
    if version is None:
        return [], None
    stmt = select(PerformanceRow).where(
        versioning.visible(PerformanceRow, version),
        PerformanceRow.rep_id == rep_id,
        PerformanceRow.period_kind == kind,
    )
    if metric:
        stmt = stmt.where(PerformanceRow.metric == metric)
    if start:
        stmt = stmt.where(
            PerformanceRow.period_start >= parse(start, settings.calendar, field="from").start
        )
    if end:
        stmt = stmt.where(
            PerformanceRow.period_start <= parse(end, settings.calendar, field="to").start
        )
    rows = list(session.scalars(stmt.order_by(PerformanceRow.period_start, PerformanceRow.metric)))
    reps, teams = rep_names(session)
    values = formula_inputs(session, version, rows)
    items = [to_read(r, reps, teams, values.get(("rep", rep_id, r.period))) for r in rows]
    ranks.apply(session, version, items, team_of=team_of(reps))
    return items, version


def coaching(
    *,
    session: Session,
    settings: Settings,
    rep_id: int,
    period: str | None,
    computed_on: date | None,
) -> CoachingRead:
    """The rep's drivers and focus in the period, and their paths to target. A rep with no
    deal or activity in the period yet (early in a month) has no driver row but may well have
    a gap to close: they get the paths alone."""
    version = version_for(session, computed_on)
    label = parse(period, settings.calendar).label if period else default_period(settings)
    row = (
        None
        if version is None
        else session.scalar(
            select(CoachingRow).where(
                versioning.visible(CoachingRow, version),
                CoachingRow.rep_id == rep_id,
                CoachingRow.period == label,
            )
        )
    )
    paths = _paths(session, version, rep_id, label) if version is not None else []
    if row is None and not paths:
        raise NotFoundError(f"no coaching figures for rep {rep_id} in {label} (not computed)")
    rep = session.get(Rep, rep_id)
    assert rep is not None
    if row is None:
        assert version is not None
        return CoachingRead(
            rep_id=rep_id,
            rep_name=rep.name,
            team_id=rep.team_id,
            period=label,
            period_kind=parse(label, settings.calendar).kind,
            coaching_focus=None,
            focus_reason=f"no deal or activity in {label} yet: no driver figures",
            focus_window=None,
            ranked=[],
            drivers={},
            path_to_target=[p for p, _ in paths],
            snapshot=max(v for _, v in paths),
        )
    assert version is not None  # a row was read in it
    drivers = completed({**row.drivers, **_reported(session, version, row)}, DRIVER_KEYS)
    return CoachingRead(
        rep_id=rep_id,
        rep_name=rep.name,
        team_id=rep.team_id,
        period=row.period,
        period_kind=row.period_kind,
        coaching_focus=row.coaching_focus,
        focus_reason=row.focus_reason,
        focus_window=drivers["focus_window"],
        ranked=[
            DriverEntry(**entry)
            for entry in ranked_drivers(drivers, period=row.period, kind=row.period_kind)
        ],
        drivers=drivers,
        path_to_target=[p for p, _ in paths],
        snapshot=row.valid_from,
    )


def _reported(session: Session, version: int, row: CoachingRow) -> dict[str, float]:
    """The reported drivers' figures of the coaching row's rep and period in ``version``, as
    driver-table keys (``pipeline_created_value``...). A row stored before they had rows of
    their own has them in its ``drivers``: the caller reads those when none is found here."""
    stored = session.scalars(
        select(ReportedDriverRow).where(
            versioning.visible(ReportedDriverRow, version),
            ReportedDriverRow.rep_id == row.rep_id,
            ReportedDriverRow.period == row.period,
        )
    )
    return {
        f"{r.driver}_{figure}": getattr(r, figure)
        for r in stored
        for figure in REPORTED_FIGURES
        if getattr(r, figure) is not None
    }


def _paths(
    session: Session, version: int, rep_id: int, period: str
) -> list[tuple[PathToTarget, int]]:
    """The rep's paths to target in the period, from the same snapshot's performance rows,
    each with the version its row was written in."""
    rows = session.scalars(
        select(PerformanceRow).where(
            versioning.visible(PerformanceRow, version),
            PerformanceRow.rep_id == rep_id,
            PerformanceRow.period == period,
            PerformanceRow.metric.in_(PATH_METRICS),
        )
    )
    paths = [(p, r.valid_from) for r in rows if (p := path_of(r)) is not None]
    return sorted(paths, key=lambda pair: PATH_METRICS.index(pair[0].metric))


def leaderboard(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    metric: str,
    team_id: int | None,
    limit: int,
    computed_on: date | None,
) -> LeaderboardRead:
    if metric not in METRICS:
        raise InvalidInputError(
            f"unknown metric {metric!r}",
            details=[{"field": "metric", "message": f"one of {', '.join(METRICS)}"}],
        )
    label = parse(period, settings.calendar).label if period else default_period(settings)
    version = version_for(session, computed_on)
    if version is None:
        return LeaderboardRead(period=label, metric=metric, items=[], snapshot=None)
    reps, teams = rep_names(session, label, settings.calendar)
    rows = session.execute(
        select(MetricRow.subject_id, MetricRow.values).where(
            versioning.visible(MetricRow, version),
            MetricRow.period == label,
            MetricRow.subject_type == "rep",
        )
    ).all()
    targets = {
        r.rep_id: r
        for r in session.scalars(
            select(PerformanceRow).where(
                versioning.visible(PerformanceRow, version),
                PerformanceRow.period == label,
                PerformanceRow.metric == metric,
                PerformanceRow.subject_type == "rep",
            )
        )
    }
    frame = pd.DataFrame(
        [(rid, vals.get(metric)) for rid, vals in rows if rid in reps and reps[rid].role == "rep"],
        columns=["rep_id", "value"],
    )
    if frame.empty:
        return LeaderboardRead(period=label, metric=metric, items=[], snapshot=version)
    frame["value"] = frame["value"].astype("float64")
    frame["team_id"] = frame["rep_id"].map(lambda r: reps[r].team_id).astype("Int64")
    frame["period"] = label
    ranked = trends.ranks(frame, metric="value", higher_is_better=METRICS[metric].higher_is_better)
    ranked = ranked.sort_values(["rank_in_company", "rep_id"], na_position="last")
    items = []
    for r in ranked.to_dict("records"):
        rep = reps[int(r["rep_id"])]
        if not principal.can_see_rep(rep.id) or (team_id is not None and rep.team_id != team_id):
            continue
        t = targets.get(rep.id)
        items.append(
            LeaderboardEntry(
                rank=int_or_none(r["rank_in_company"]) or 0,
                percentile=float_or_none(r["percentile_in_company"]) or 0.0,
                rep_id=rep.id,
                rep_name=rep.name,
                team_id=rep.team_id,
                team_name=teams.get(rep.team_id) if rep.team_id else None,
                value=float_or_none(r["value"]),
                target=t.target if t else None,
                attainment=t.attainment if t else None,
            )
        )
    return LeaderboardRead(period=label, metric=metric, items=items[:limit], snapshot=version)


def team_performance(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    team_id: int,
    period: str | None,
    computed_on: date | None,
) -> TeamPerformanceRead:
    """The team's own target rows, and the rollup of its reps' rows (the team tree)."""
    team = session.get(Team, team_id)
    if team is None:
        raise NotFoundError(f"team {team_id} not found")
    label = parse(period, settings.calendar).label if period else default_period(settings)
    version = version_for(session, computed_on)
    if version is None:
        return TeamPerformanceRead(
            team_id=team_id, team_name=team.name, period=label, rollup=[], rows=[], snapshot=None
        )
    tree = team_tree.subtree(session=session, roots=[team_id])
    reps, teams = rep_names(session, label, settings.calendar)
    members = {rid for rid, rep in reps.items() if rep.team_id in tree and rep.role == "rep"}
    rows = list(
        session.scalars(
            select(PerformanceRow).where(
                versioning.visible(PerformanceRow, version),
                PerformanceRow.period == label,
                (PerformanceRow.rep_id.in_(members)) | (PerformanceRow.team_id == team_id),
            )
        )
    )
    items = reads(session, version, rows, names=(reps, teams))
    rep_rows = rollup_frame(
        [
            (i.rep_id, team_id, i.metric, i.period, i.actual, i.target, i.attainment, i.status)
            for i in items
            if i.subject_type == "rep"
        ]
    )
    summary: list[TeamRollupRow] = []
    if not rep_rows.empty:
        # A running period is judged on status (at risk / missed), a finished one on attainment.
        running = any(i.status in ("on_track", "at_risk") for i in items)
        rolled = rollups.rollup(
            rep_rows, by="team_id", below_by="status" if running else "attainment"
        )
        spread = rollups.variance_between_teams(_company_rows(session, version, label, reps))
        rolled = rolled.merge(
            spread[["metric", "period", "eta_squared"]], on=["metric", "period"], how="left"
        )
        rolled = rolled.rename(columns={"eta_squared": "company_variance_between_teams"})
        summary = [
            TeamRollupRow(**versioning.clean(r))
            for r in rolled.drop(columns=["team_id"], errors="ignore").to_dict("records")
        ]
    visible_items = [
        i for i in items if i.subject_type == "team" or principal.can_see_rep(i.rep_id)
    ]
    return TeamPerformanceRead(
        team_id=team_id,
        team_name=team.name,
        period=label,
        rollup=summary,
        rows=visible_items,
        snapshot=version,
    )


def _company_rows(
    session: Session, version: int, label: str, reps: dict[int, RepName]
) -> pd.DataFrame:
    """Every rep's attainment in the period, with their own team, for the variance split."""
    rows = session.execute(
        select(
            PerformanceRow.rep_id,
            PerformanceRow.metric,
            PerformanceRow.period,
            PerformanceRow.attainment,
        ).where(
            versioning.visible(PerformanceRow, version),
            PerformanceRow.period == label,
            PerformanceRow.subject_type == "rep",
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["rep_id", "metric", "period", "attainment"])
    frame["team_id"] = (
        frame["rep_id"].map(lambda r: reps[r].team_id if r in reps else None).astype("Int64")
    )
    frame["attainment"] = frame["attainment"].astype("float64")
    return frame


def rep_trend(
    *,
    session: Session,
    settings: Settings,
    rep_id: int,
    metric: str,
    kind: str,
    periods: int,
    end: str | None,
    computed_on: date | None,
) -> TrendRead:
    """The rep's metric over the last ``periods`` periods, with its least-squares slope."""
    if metric not in METRICS:
        raise InvalidInputError(
            f"unknown metric {metric!r}",
            details=[{"field": "metric", "message": f"one of {', '.join(METRICS)}"}],
        )
    version = version_for(session, computed_on)
    current = (
        parse(end, settings.calendar, field="end")
        if end
        else period_of(settings.today(), kind, settings.calendar)
    )
    kind = current.kind
    rows = (
        []
        if version is None
        else session.execute(
            select(MetricRow.period, MetricRow.values).where(
                versioning.visible(MetricRow, version),
                MetricRow.subject_type == "rep",
                MetricRow.subject_id == rep_id,
                MetricRow.period_kind == kind,
                MetricRow.period_start <= current.start,
            )
        ).all()
    )
    history = pd.DataFrame(
        [(rep_id, metric, p, v.get(metric)) for p, v in rows],
        columns=["rep_id", "metric", "period", "value"],
    )
    history["value"] = history["value"].astype("float64")
    if history.empty:
        return TrendRead(
            rep_id=rep_id,
            metric=metric,
            period_kind=kind,
            values=[],
            direction=None,
            snapshot=version,
        )
    history["period_index"] = period_index(
        pd.Series([parse(p, settings.calendar).start for p in history["period"]]),
        kind,
        settings.calendar,
    )
    out = trends.trend(
        history,
        periods=periods,
        end=int(period_index(pd.Series([current.start]), kind, settings.calendar)[0]),
    )
    result: dict[str, Any] = versioning.clean(out.to_dict("records")[0]) if len(out) else {}
    return TrendRead.model_validate(
        {"metric": metric, "period_kind": kind, **result, "rep_id": rep_id, "snapshot": version}
    )
