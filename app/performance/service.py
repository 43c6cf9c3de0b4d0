"""Reading results: every answer comes from one snapshot version, named in the answer."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import rollups, trends
from analytics.metrics import METRICS
from analytics.periods import FiscalCalendar, period_of
from app.auth.service import Principal
from app.core.config import Settings
from app.core.exceptions import InvalidInputError, NotFoundError
from app.core.periods import parse
from app.performance import ranks, versioning
from app.performance.membership import teams_of_movers
from app.performance.models import CoachingRow, MetricRow, PerformanceRow, Snapshot
from app.performance.schemas import (
    CoachingRead,
    LeaderboardEntry,
    LeaderboardRead,
    PerformanceRead,
    SnapshotRead,
    SummaryRead,
    SummaryRep,
    SummarySource,
    SummaryTeam,
    TeamPerformanceRead,
)
from app.reps.models import Rep
from app.teams.models import Team

SORTABLE = ("attainment", "gap", "actual", "pace_gap", "projected", "rep_name", "status")
PERSISTENT_AFTER = 3


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
    from app.performance.compute import today

    return period_of(today(settings), kind, settings.calendar).label


class RepName(NamedTuple):
    id: int
    name: str
    team_id: int | None
    manager_id: int | None
    role: str
    is_active: bool


def _names(
    session: Session, period: str | None = None, cal: FiscalCalendar | None = None
) -> tuple[dict[int, RepName], dict[int, str]]:
    """Who is who, as plain rows: the ORM's Rep (with its team, manager and identities) costs
    more to load than most answers cost to compute. With a ``period``, each rep's team is the
    one they were on for most of it (a moved rep's past periods keep their old team)."""
    reps = {
        r.id: RepName(*r)
        for r in session.execute(
            select(Rep.id, Rep.name, Rep.team_id, Rep.manager_id, Rep.role, Rep.is_active)
        )
    }
    if period is not None and cal is not None:
        current = {r.id: (r.team_id, r.role) for r in reps.values()}
        for rep_id, team_id in teams_of_movers(session, current, period, cal).items():
            reps[rep_id] = reps[rep_id]._replace(team_id=team_id)
    teams = {team_id: name for team_id, name in session.execute(select(Team.id, Team.name))}
    return reps, teams


def _cursor(offset: int, version: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}:v:{version}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str | None) -> tuple[int, int | None]:
    if not cursor:
        return 0, None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        o, offset, v, version = raw.split(":")
        if (o, v) != ("o", "v"):
            raise ValueError(raw)
        return int(offset), int(version)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidInputError(
            "invalid cursor", details=[{"field": "cursor", "message": "not a cursor"}]
        ) from exc


def _records_link(row: PerformanceRow) -> str | None:
    # A team's figure pools its whole subtree (the compute's membership): so does its link.
    subject = (
        f"rep_id={row.rep_id}"
        if row.rep_id is not None
        else f"team_id={row.team_id}&team_scope=subtree"
    )
    if row.metric in {
        "won_revenue",
        "won_deals",
        "win_rate",
        "win_rate_value",
        "avg_deal_size",
        "sales_cycle_days",
    }:
        return f"/api/v1/deals?{subject}&closed_in={row.period}"
    if row.metric in {"pipeline_created", "opportunities", "sales_velocity"}:
        return f"/api/v1/deals?{subject}&created_in={row.period}"
    if row.metric in {"activities", "calls", "emails", "meetings", "tasks"}:
        kind = {
            "calls": "&type=call",
            "emails": "&type=email",
            "meetings": "&type=meeting",
            "tasks": "&type=task",
        }.get(row.metric, "")
        return f"/api/v1/activities?{subject}&occurred_in={row.period}{kind}"
    return None


def _inputs(session: Session, version: int, rows: Sequence[PerformanceRow]) -> dict[Any, Any]:
    periods = {r.period for r in rows}
    if not periods:
        return {}
    subjects = {r.rep_id if r.rep_id is not None else r.team_id for r in rows}
    metric_rows = session.execute(
        select(
            MetricRow.subject_type, MetricRow.subject_id, MetricRow.period, MetricRow.values
        ).where(
            versioning.visible(MetricRow, version),
            MetricRow.period.in_(periods),
            MetricRow.subject_id.in_(subjects),
        )
    ).all()
    return {(m.subject_type, m.subject_id, m.period): m.values for m in metric_rows}


def _to_read(
    row: PerformanceRow,
    reps: dict[int, RepName],
    teams: dict[int, str],
    values: dict[str, Any] | None,
) -> PerformanceRead:
    rep = reps.get(row.rep_id) if row.rep_id is not None else None
    team_id = rep.team_id if rep is not None else row.team_id
    metric = METRICS.get(row.metric)
    inputs = {k: (values or {}).get(k) for k in (metric.inputs if metric else ())}
    return PerformanceRead(
        subject_type=row.subject_type,
        rep_id=row.rep_id,
        rep_name=rep.name if rep else None,
        team_id=team_id,
        team_name=teams.get(team_id) if team_id is not None else None,
        manager_id=rep.manager_id if rep else None,
        metric=row.metric,
        period=row.period,
        period_kind=row.period_kind,
        period_start=row.period_start,
        period_end=row.period_end,
        status=row.status,
        actual=row.actual,
        target=row.target,
        target_full=row.target_full,
        proration_factor=row.proration_factor,
        ramp_factor=row.ramp_factor,
        target_note=row.target_note,
        target_source="derived" if row.target_derived_from else "set",
        target_derived_from=row.target_derived_from.split(",") if row.target_derived_from else [],
        gap=row.gap,
        attainment=row.attainment,
        elapsed_fraction=row.elapsed_fraction,
        pacing=row.pacing,
        expected_to_date=row.expected_to_date,
        pace_gap=row.pace_gap,
        projected=row.projected,
        open_pipeline=row.open_pipeline,
        weighted_pipeline=row.weighted_pipeline,
        projected_with_pipeline=row.projected_with_pipeline,
        coverage=row.coverage,
        coverage_needed=row.coverage_needed,
        consecutive_misses=row.consecutive_misses,
        persistent_underperformer=row.consecutive_misses >= PERSISTENT_AFTER,
        inputs=inputs,
        records=_records_link(row),
        snapshot=row.valid_from,
    )


def _reads(
    session: Session,
    version: int,
    rows: Sequence[PerformanceRow],
    *,
    names: tuple[dict[int, RepName], dict[int, str]] | None = None,
    whole_population: bool = False,
) -> list[PerformanceRead]:
    """Rows as API items, with names, formula inputs and ranks.

    Ranks compare each rep with the snapshot's whole population for the period and metric
    (:mod:`app.performance.ranks`). ``whole_population`` says ``rows`` already are that
    population (no filter narrowed them), so they are ranked as they are, without a query.
    """
    reps, teams = names or _names(session)
    values = _inputs(session, version, rows)
    items = [
        _to_read(
            r,
            reps,
            teams,
            values.get((r.subject_type, r.rep_id if r.rep_id is not None else r.team_id, r.period)),
        )
        for r in rows
    ]
    if whole_population:
        ranks.rank(items)
    else:
        ranks.apply(session, version, items, team_of=_team_of(reps))
    return items


def _team_of(reps: dict[int, RepName]) -> dict[int, int | None]:
    return {rep_id: rep.team_id for rep_id, rep in reps.items()}


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)


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
    offset, pinned = _parse_cursor(cursor)
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
    names = _names(session, label, settings.calendar)
    items = _reads(session, version, rows, names=names, whole_population=status is None)
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
    next_cursor = _cursor(offset + limit, version) if offset + limit < len(items) else None
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
    reps, teams = _names(session)
    values = _inputs(session, version, rows)
    items = [_to_read(r, reps, teams, values.get(("rep", rep_id, r.period))) for r in rows]
    ranks.apply(session, version, items, team_of=_team_of(reps))
    return items, version


def coaching(
    *,
    session: Session,
    settings: Settings,
    rep_id: int,
    period: str | None,
    computed_on: date | None,
) -> CoachingRead:
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
    if row is None:
        raise NotFoundError(f"no coaching figures for rep {rep_id} in {label} (not computed)")
    rep = session.get(Rep, rep_id)
    assert rep is not None
    return CoachingRead(
        rep_id=rep_id,
        rep_name=rep.name,
        team_id=rep.team_id,
        period=row.period,
        period_kind=row.period_kind,
        coaching_focus=row.coaching_focus,
        focus_reason=row.focus_reason,
        drivers=row.drivers,
        snapshot=row.valid_from,
    )


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
    reps, teams = _names(session, label, settings.calendar)
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
                rank=_int_or_none(r["rank_in_company"]) or 0,
                percentile=_float_or_none(r["percentile_in_company"]) or 0.0,
                rep_id=rep.id,
                rep_name=rep.name,
                team_id=rep.team_id,
                team_name=teams.get(rep.team_id) if rep.team_id else None,
                value=_float_or_none(r["value"]),
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
    from app.teams import tree as team_tree

    tree = team_tree.subtree(session=session, roots=[team_id])
    reps, teams = _names(session, label, settings.calendar)
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
    items = _reads(session, version, rows, names=(reps, teams))
    rep_rows = _rollup_frame(
        [
            (i.rep_id, team_id, i.metric, i.period, i.actual, i.target, i.attainment, i.status)
            for i in items
            if i.subject_type == "rep"
        ]
    )
    summary: list[dict[str, Any]] = []
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
            versioning.clean(r)
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


ROLLUP_INPUT = ("rep_id", "team_id", "metric", "period", "actual", "target", "attainment", "status")


def _rollup_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rep rows as :func:`analytics.rollups.rollup` reads them (figures as float64, NaN for
    a missing one)."""
    frame = pd.DataFrame(rows, columns=list(ROLLUP_INPUT))
    for col in ("actual", "target", "attainment"):
        frame[col] = frame[col].astype("float64")
    return frame


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
) -> dict[str, Any]:
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
        else period_of(_today(settings), kind, settings.calendar)
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
        return {
            "rep_id": rep_id,
            "metric": metric,
            "period_kind": kind,
            "values": [],
            "direction": None,
            "snapshot": version,
        }
    from analytics.periods import period_index as index_of

    history["period_index"] = index_of(
        pd.Series([parse(p, settings.calendar).start for p in history["period"]]),
        kind,
        settings.calendar,
    )
    out = trends.trend(
        history,
        periods=periods,
        end=int(index_of(pd.Series([current.start]), kind, settings.calendar)[0]),
    )
    result: dict[str, Any] = versioning.clean(out.to_dict("records")[0]) if len(out) else {}
    return {**result, "rep_id": rep_id, "snapshot": version}


def _today(settings: Settings) -> date:
    from app.performance.compute import today

    return today(settings)


def list_wins(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    min_amount: float | None,
    top_percentile: float,
) -> list[dict[str, Any]]:
    """Deals to recognise in a period: above ``min_amount`` or in the period's top percentile."""
    from analytics import wins as wins_analytics
    from app.performance import frames

    label = parse(period, settings.calendar).label if period else default_period(settings)
    p = parse(label, settings.calendar)
    deals = frames.deals_frame(session.connection(), since=p.start, until=p.end, status="won")
    found = wins_analytics.wins(
        deals,
        rates=settings.currency_rates,
        kind=p.kind,
        cal=settings.calendar,
        min_amount=min_amount,
        top_percentile=top_percentile,
        periods=[label],
    )
    reps, _ = _names(session)
    out = []
    for r in found.to_dict("records"):
        rep_id = int(r["rep_id"])
        if not principal.can_see_rep(rep_id):
            continue
        out.append(
            versioning.clean(
                {
                    **r,
                    "rep_name": reps[rep_id].name if rep_id in reps else None,
                    "close_date": str(pd.Timestamp(r["close_date"]).date()),
                }
            )
        )
    return out


def hygiene_report(
    *, session: Session, settings: Settings, principal: Principal, team_id: int | None
) -> dict[str, Any]:
    """CRM hygiene per rep today: past-due and stale open deals, activities per week."""
    from analytics import hygiene
    from app.performance import frames

    as_of = _today(settings)
    conn = session.connection()
    deals = frames.deals_frame(conn, status="open")
    acts = frames.activities_frame(conn, since=as_of - timedelta(days=45), until=as_of)
    reps, teams = _names(session)
    people = pd.DataFrame(
        {"rep_id": [r.id for r in reps.values() if r.role == "rep" and r.is_active]}
    )
    table = hygiene.hygiene(
        deals, acts, as_of=as_of, rates=settings.currency_rates, tz=settings.timezone, reps=people
    )
    items = []
    for r in table.to_dict("records"):
        rep = reps[int(r["rep_id"])]
        if not principal.can_see_rep(rep.id) or (team_id is not None and rep.team_id != team_id):
            continue
        items.append(
            versioning.clean(
                {
                    **r,
                    "rep_name": rep.name,
                    "team_id": rep.team_id,
                    "team_name": teams.get(rep.team_id) if rep.team_id else None,
                }
            )
        )
    return {"as_of": str(as_of), "items": items}


BANDS = ((0.5, "<50%"), (0.8, "50-80%"), (1.0, "80-100%"), (1.2, "100-120%"))


def _band(attainment: float | None) -> str:
    if attainment is None:
        return "no target"
    return next((label for upper, label in BANDS if attainment < upper), ">=120%")


def summary(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    metric: str,
    computed_on: date | None,
) -> SummaryRead:
    """One period and metric for a wallboard: totals, the attainment spread, each team's
    rollup, who is at risk, and how fresh each source is."""
    from app.sources.models import Source

    label = parse(period, settings.calendar).label if period else default_period(settings)
    version = version_for(session, computed_on)
    sources = [
        SummarySource(
            source_id=s.id,
            name=s.name,
            kind=s.kind,
            last_success_at=s.last_success_at,
            # Viewers may not read sources (GET /sources is 403): freshness only, no error text.
            last_error=None if principal.role == "viewer" else s.last_error,
            consecutive_failures=s.consecutive_failures,
        )
        for s in session.scalars(select(Source).order_by(Source.id))
    ]
    bands = dict.fromkeys([label for _, label in BANDS] + [">=120%", "no target"], 0)
    empty = SummaryRead(
        period=label,
        metric=metric,
        snapshot=version,
        computed_at=None,
        totals={},
        attainment_distribution=bands,
        teams=[],
        at_risk=[],
        sources=sources,
    )
    if version is None:
        return empty
    snap = session.get(Snapshot, version)
    reps, teams = _names(session, label, settings.calendar)
    rows = [
        r
        for r in session.scalars(
            select(PerformanceRow).where(
                versioning.visible(PerformanceRow, version),
                PerformanceRow.period == label,
                PerformanceRow.metric == metric,
                PerformanceRow.subject_type == "rep",
            )
        )
        if principal.can_see_rep(r.rep_id)
    ]
    focus = {
        rep_id: f
        for rep_id, f in session.execute(
            select(CoachingRow.rep_id, CoachingRow.coaching_focus).where(
                versioning.visible(CoachingRow, version), CoachingRow.period == label
            )
        )
    }
    for r in rows:
        bands[_band(r.attainment if r.target else None)] += 1
    with_target = [r for r in rows if r.target]
    actual = sum(r.actual or 0.0 for r in with_target)
    target = sum(r.target or 0.0 for r in with_target)
    below = [r for r in with_target if r.status in rollups.BELOW_STATUSES]
    frame = _rollup_frame(
        [
            (
                r.rep_id,
                reps[r.rep_id].team_id if r.rep_id in reps else None,
                r.metric,
                r.period,
                r.actual,
                r.target,
                r.attainment,
                r.status,
            )
            for r in rows
        ]
    )
    rolled = rollups.rollup(frame, by="team_id", below_by="status") if len(frame) else frame
    team_rows = [
        SummaryTeam(
            team_id=int(t["team_id"]),
            team_name=teams.get(int(t["team_id"]), ""),
            reps=int(t["reps"]),
            actual=_float_or_none(t["actual"]),
            target=_float_or_none(t["target"]),
            attainment=_float_or_none(t["attainment"]),
            reps_below_target=int(t["reps_below_target"]),
            share_below_target=_float_or_none(t["share_below_target"]),
            team_wide_gap=bool(t["team_wide_gap"]),
        )
        for t in (rolled.to_dict("records") if len(frame) else [])
    ]
    at_risk = sorted(below, key=lambda r: -(r.gap or 0.0))
    return empty.model_copy(
        update={
            "computed_at": snap.computed_at if snap else None,
            "totals": {
                "actual": actual,
                "target": target,
                "attainment": actual / target if target else None,
                "reps": len(rows),
                "reps_with_target": len(with_target),
                "reps_below_target": len(below),
            },
            "attainment_distribution": bands,
            "teams": team_rows,
            "at_risk": [
                SummaryRep(
                    rep_id=r.rep_id or 0,
                    rep_name=reps[r.rep_id].name if r.rep_id in reps else "",
                    team_id=reps[r.rep_id].team_id if r.rep_id in reps else None,
                    status=r.status,
                    actual=r.actual,
                    target=r.target,
                    gap=r.gap,
                    attainment=r.attainment,
                    pace_gap=r.pace_gap,
                    projected=r.projected,
                    coaching_focus=focus.get(r.rep_id or 0),
                )
                for r in at_risk
            ],
        }
    )
