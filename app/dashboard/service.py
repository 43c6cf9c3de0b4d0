"""What the dashboard shows, gathered with the same service calls (and the same Principal) as
the API, so every number on the page is the number the API answers.

The only queries written here are the picker's choices: which periods and metrics have
figures in the current snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.metrics import METRICS
from app.alerts import service as alerts_service
from app.alerts.models import Alert
from app.alerts.schemas import AlertRead
from app.auth.service import Principal
from app.core.config import Settings
from app.core.exceptions import NotFoundError
from app.core.periods import parse
from app.performance import record as coaching_record
from app.performance import service as performance
from app.performance import versioning
from app.performance.models import PerformanceRow, Snapshot
from app.performance.schemas import (
    CoachingRead,
    CoachingRun,
    LeaderboardRead,
    PerformanceRead,
    SnapshotRead,
)
from app.sources import service as sources_service
from app.sources.schemas import SourceRead
from app.teams.models import Team

DEFAULT_METRIC = "won_revenue"
TREND_PERIODS = 6
ALERTS_SHOWN = 12
# The alerts panel shows the period's open alerts most important first, then newest first;
# then the resolved ones in the same order. Each says what its figures are now.
SEVERITY = {
    t: i
    for i, t in enumerate(
        (
            "team.wide_gap",
            "rep.persistent_underperformance",
            "target.missed",
            "target.at_risk",
            "rep.coaching_stalled",
            "deal.big_win",
            "crm.hygiene",
        )
    )
}
# How many periods of each kind the picker offers, newest first.
PICKER_DEPTH = {"month": 12, "quarter": 6, "year": 3}
# Alerts and sync health are records-level reads in the API (admin, analyst, manager);
# a viewer key sees metrics only, on the page as in the API.
RECORD_READERS = ("admin", "analyst", "manager")


@dataclass(frozen=True)
class Bar:
    """An attainment bar on a shared scale: widths and positions in percent of the track."""

    width: float
    pace_x: float | None
    target_x: float
    overflow: bool


@dataclass(frozen=True)
class Spark:
    """A sparkline in a 100 x 30 box: the polyline's points and the last point."""

    points: str
    last_x: float
    last_y: float


@dataclass
class RepLine:
    perf: PerformanceRead
    bar: Bar
    trend: dict[str, Any]
    spark: Spark | None
    coaching: CoachingRead | None


@dataclass
class RunLine:
    """A rep's coaching record at the page's period: the focus named and how its driver has
    moved since it was first named in a row (GET /api/v1/reps/{id}/coaching/record)."""

    rep_id: int
    rep_name: str | None
    team_name: str | None
    run: CoachingRun


@dataclass
class TeamLine:
    team_id: int
    team_name: str
    parent_id: int | None
    rollup: dict[str, Any] | None
    bar: Bar | None
    # The team's own target row for the metric when it is at risk with a path to target.
    at_risk: PerformanceRead | None = None


@dataclass
class PeriodChoice:
    label: str
    kind: str


@dataclass
class Dashboard:
    period: str
    period_kind: str
    metric: str
    metric_unit: str
    metric_description: str
    higher_is_better: bool
    periods: list[PeriodChoice]
    metrics: list[str]
    snapshot: SnapshotRead | None
    scale: float
    reps: list[RepLine]
    leaderboard: LeaderboardRead
    teams: list[TeamLine]
    roots: list[TeamLine]
    alerts: list[AlertRead] | None
    alerts_total: int
    sources: list[SourceRead] | None
    notes: list[str] = field(default_factory=list)
    coaching_runs: list[RunLine] = field(default_factory=list)


def bar_scale(values: list[float | None]) -> float:
    """The right end of every bar: at least 125%, at most 300%, in steps of 25%."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max([1.25, *finite])
    return min(3.0, math.ceil(top * 4) / 4)


def bar(attainment: float | None, pace: float | None, scale: float) -> Bar:
    att = max(0.0, attainment or 0.0)
    return Bar(
        width=round(min(att, scale) / scale * 100, 2),
        pace_x=None if pace is None else round(min(max(pace, 0.0), scale) / scale * 100, 2),
        target_x=round(1 / scale * 100, 2),
        overflow=att > scale,
    )


def sparkline(values: list[Any]) -> Spark | None:
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if len(values) < 2 or len(points) < 2:
        return None
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = high - low or 1.0
    step = 100 / (len(values) - 1)
    xy = [(round(i * step, 2), round(27 - (v - low) / span * 24, 2)) for i, v in points]
    return Spark(points=" ".join(f"{x},{y}" for x, y in xy), last_x=xy[-1][0], last_y=xy[-1][1])


def _pace(item: PerformanceRead) -> float | None:
    """Where the expected-to-date mark sits, as a fraction of the target."""
    if item.expected_to_date is None or not item.target:
        return None
    return item.expected_to_date / item.target


def period_choices(session: Session, settings: Settings, version: int | None) -> list[PeriodChoice]:
    """The periods with figures in the snapshot, up to the one it was computed in (or today's,
    whichever is later), newest first."""
    if version is None:
        return []
    snap = session.get(Snapshot, version)
    today = max(settings.today(), snap.as_of) if snap else settings.today()
    rows = session.execute(
        select(PerformanceRow.period, PerformanceRow.period_kind, PerformanceRow.period_start)
        .where(
            versioning.visible(PerformanceRow, version),
            PerformanceRow.period_start <= today,
        )
        .distinct()
    ).all()
    out: list[PeriodChoice] = []
    for kind, depth in PICKER_DEPTH.items():
        of_kind = sorted((r for r in rows if r.period_kind == kind), key=lambda r: r.period_start)
        out += [PeriodChoice(r.period, kind) for r in reversed(of_kind[-depth:])]
    return out


def metric_choices(session: Session, version: int | None, period: str) -> list[str]:
    """The metrics with targets (rows) in the period, in the catalogue's order."""
    if version is None:
        return []
    found = set(
        session.scalars(
            select(PerformanceRow.metric)
            .where(
                versioning.visible(PerformanceRow, version),
                PerformanceRow.period == period,
                PerformanceRow.subject_type == "rep",
            )
            .distinct()
        )
    )
    return [m for m in METRICS if m in found]


def _coaching(
    session: Session, settings: Settings, rep_id: int, period: str
) -> CoachingRead | None:
    try:
        return performance.coaching(
            session=session, settings=settings, rep_id=rep_id, period=period, computed_on=None
        )
    except NotFoundError:
        return None


def _teams(
    session: Session, settings: Settings, principal: Principal, period: str, metric: str
) -> tuple[list[TeamLine], list[TeamLine]]:
    """Each visible team's rollup for the metric (GET /api/v1/teams/{id}/performance), with
    its bar, best first; and the top teams of the visible tree, in id order."""
    lines = []
    for team_id, name, parent_id in session.execute(
        select(Team.id, Team.name, Team.parent_id).order_by(Team.id)
    ):
        if not principal.can_see_team(team_id):
            continue
        read = performance.team_performance(
            session=session,
            settings=settings,
            principal=principal,
            team_id=team_id,
            period=period,
            computed_on=None,
        )
        rollup = next((r.model_dump() for r in read.rollup if r.metric == metric), None)
        own = next(
            (
                r
                for r in read.rows
                if r.subject_type == "team" and r.team_id == team_id and r.metric == metric
            ),
            None,
        )
        at_risk = own if own and own.status == "at_risk" and own.path_to_target else None
        lines.append(TeamLine(team_id, name, parent_id, rollup, None, at_risk))
    scale = bar_scale([t.rollup.get("attainment") for t in lines if t.rollup])
    for t in lines:
        if t.rollup:
            t.bar = bar(t.rollup.get("attainment"), None, scale)
    visible = {t.team_id for t in lines}
    roots = [t for t in lines if t.parent_id not in visible]
    return sorted(lines, key=lambda t: (-_attainment(t), t.team_name)), roots


def _attainment(team: TeamLine) -> float:
    value = (team.rollup or {}).get("attainment")
    return float(value) if value is not None else -math.inf


def _metric(asked: str | None, metrics: list[str], notes: list[str]) -> str:
    """The metric to show: the one asked for if known, else the default or the first with
    targets; added to the picker's ``metrics`` if it has none in the period."""
    if asked and asked not in METRICS:
        notes.append(f"unknown metric {asked!r}: showing {DEFAULT_METRIC}")
        asked = None
    metric = asked or (DEFAULT_METRIC if DEFAULT_METRIC in metrics or not metrics else metrics[0])
    if metric not in metrics:
        metrics.append(metric)
    return metric


def _rep_lines(
    session: Session,
    settings: Settings,
    items: list[PerformanceRead],
    *,
    kind: str,
    period: str,
    metric: str,
    scale: float,
) -> list[RepLine]:
    """Each rep's bar, trend over the last periods and coaching focus."""
    reps = []
    for item in items:
        assert item.rep_id is not None
        trend = performance.rep_trend(
            session=session,
            settings=settings,
            rep_id=item.rep_id,
            metric=metric,
            kind=kind,
            periods=TREND_PERIODS,
            end=period,
            computed_on=None,
        ).model_dump()
        reps.append(
            RepLine(
                perf=item,
                bar=bar(item.attainment, _pace(item), scale),
                trend=trend,
                spark=sparkline(list(trend.get("values") or [])),
                coaching=_coaching(session, settings, item.rep_id, period),
            )
        )
    return reps


def _runs(
    session: Session, settings: Settings, items: list[PerformanceRead], period: str
) -> list[RunLine]:
    """The coaching record of the page's reps with a focus named in the period, the rep
    furthest below target first (the one who most needs a manager's look), then the longest
    stalled."""
    names = {i.rep_id: (i.rep_name, i.team_name) for i in items if i.rep_id is not None}
    attainment = {i.rep_id: i.attainment for i in items}
    runs = coaching_record.runs_at(session=session, settings=settings, rep_ids=names, period=period)
    lines = [RunLine(rep_id, *names[rep_id], run) for rep_id, run in runs.items()]

    def need(line: RunLine) -> tuple[float, int, str]:
        reached = attainment.get(line.rep_id)
        return (
            reached if reached is not None else float("inf"),
            -line.run.stalled_periods,
            line.rep_name or "",
        )

    return sorted(lines, key=need)


def _alerts(session: Session, principal: Principal, period: str) -> tuple[list[AlertRead], int]:
    """The period's alerts to show, and how many there are."""
    stmt = alerts_service.alerts_query(principal=principal, period=period)
    found = list(session.scalars(stmt.order_by(Alert.id.desc())))
    # Open alerts before resolved ones (shown as such, not as active); stable: newest first.
    found.sort(key=lambda a: (a.state != "open", SEVERITY.get(a.event_type, len(SEVERITY))))
    return [AlertRead.model_validate(a) for a in found[:ALERTS_SHOWN]], len(found)


def build(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    metric: str | None,
) -> Dashboard:
    notes: list[str] = []
    version = performance.version_for(session, None)
    label = (
        parse(period, settings.calendar).label if period else performance.default_period(settings)
    )
    kind = parse(label, settings.calendar).kind
    metrics = metric_choices(session, version, label)
    metric = _metric(metric, metrics, notes)
    periods = period_choices(session, settings, version)
    if label not in {p.label for p in periods}:
        periods.insert(0, PeriodChoice(label, kind))

    items, _, _ = performance.list_performance(
        session=session,
        settings=settings,
        principal=principal,
        period=label,
        metric=metric,
        team_id=None,
        manager_id=None,
        status=None,
        subject_type="rep",
        sort="-attainment",
        cursor=None,
        limit=10_000,
        computed_on=None,
    )
    scale = bar_scale([i.attainment for i in items] + [_pace(i) for i in items])
    reps = _rep_lines(session, settings, items, kind=kind, period=label, metric=metric, scale=scale)
    leaderboard = performance.leaderboard(
        session=session,
        settings=settings,
        principal=principal,
        period=label,
        metric=metric,
        team_id=None,
        limit=100,
        computed_on=None,
    )
    teams, roots = _teams(session, settings, principal, label, metric)

    alerts, alerts_total, sources = None, 0, None
    if principal.role in RECORD_READERS:
        alerts, alerts_total = _alerts(session, principal, label)
        sources = [
            sources_service.to_read(session, s) for s in session.scalars(sources_service.query())
        ]
    definition = METRICS[metric]
    return Dashboard(
        period=label,
        period_kind=kind,
        metric=metric,
        metric_unit=definition.unit,
        metric_description=definition.description,
        higher_is_better=definition.higher_is_better,
        periods=periods,
        metrics=metrics,
        snapshot=performance.snapshot(session, version),
        scale=scale,
        reps=reps,
        leaderboard=leaderboard,
        teams=teams,
        roots=roots,
        alerts=alerts,
        alerts_total=alerts_total,
        sources=sources,
        notes=notes,
        coaching_runs=_runs(session, settings, items, label),
    )
