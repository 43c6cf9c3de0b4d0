"""Alert evaluation: turn the latest snapshot into alerts, each raised once.

Runs as the last stage of every compute job (sync → compute → alerts). Each enabled rule
looks at the current period and ``alert_lookback_periods`` before it, of its period kinds,
and yields candidates; a candidate's ``event_id`` hashes (rule, event type, subject, metric,
period), so a candidate already raised is skipped and re-running the jobs raises nothing new.
A status change is a new alert because it is a different rule type (``target.at_risk``
mid-period, then ``target.missed`` once the period closed).

New alerts and their webhook deliveries are written in one transaction (the outbox).
See docs/alerts.md for each rule type's condition and the numbers an alert carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import hygiene as hygiene_analytics
from analytics import rollups
from analytics import wins as wins_analytics
from analytics.periods import Period, period_of, shift
from app import frames
from app.alerts.models import Alert, AlertRule
from app.alerts.schemas import check_params
from app.config import Settings
from app.performance import versioning
from app.performance.models import CoachingRow, PerformanceRow, Snapshot
from app.reps.models import Rep
from app.teams import service as teams_service
from app.teams.models import Team
from app.webhooks import service as webhooks_service

TARGET_EVENTS = ("target.missed", "target.at_risk", "rep.persistent_underperformance")
ROW_FIGURES = (
    "actual",
    "target",
    "target_full",
    "gap",
    "attainment",
    "elapsed_fraction",
    "expected_to_date",
    "pace_gap",
    "projected",
    "projected_with_pipeline",
    "coverage",
    "coverage_needed",
    "consecutive_misses",
)


@dataclass
class Candidate:
    event_type: str
    subject_type: str
    subject_id: int
    rep_id: int | None
    team_id: int | None
    metric: str | None
    period: str | None
    status: str | None
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    alerts: list[Alert]
    deliveries: int
    rules: int
    candidates: int


def event_id(rule_id: int, c: Candidate) -> str:
    key = f"{rule_id}|{c.event_type}|{c.subject_type}:{c.subject_id}|{c.metric}|{c.period}"
    return "alrt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class _Context:
    session: Session
    settings: Settings
    version: int
    today: date
    reps: dict[int, Rep]
    teams: dict[int, Team]
    _rows: dict[tuple[str, ...], pd.DataFrame] = field(default_factory=dict)

    def periods(self, kinds: Iterable[str]) -> list[Period]:
        cal = self.settings.calendar
        out = []
        for kind in kinds:
            current = period_of(self.today, kind, cal)
            out += [
                shift(current, -i, cal) for i in range(self.settings.alert_lookback_periods + 1)
            ]
        return out

    def rows(self, labels: list[str]) -> pd.DataFrame:
        """The snapshot's target rows of these periods, with rep and team names."""
        key = tuple(sorted(labels))
        if key not in self._rows:
            rows = self.session.scalars(
                select(PerformanceRow).where(
                    versioning.visible(PerformanceRow, self.version),
                    PerformanceRow.period.in_(labels),
                )
            ).all()
            records = [
                {
                    "row_id": r.id,
                    "subject_type": r.subject_type,
                    "rep_id": r.rep_id,
                    "team_id": r.team_id if r.subject_type == "team" else self._rep_team(r.rep_id),
                    "metric": r.metric,
                    "period": r.period,
                    "period_end": r.period_end,
                    "status": r.status,
                    **{f: getattr(r, f) for f in ROW_FIGURES},
                }
                for r in rows
            ]
            self._rows[key] = pd.DataFrame(
                records,
                columns=[
                    "row_id",
                    "subject_type",
                    "rep_id",
                    "team_id",
                    "metric",
                    "period",
                    "period_end",
                    "status",
                    *ROW_FIGURES,
                ],
            )
        return self._rows[key]

    def _rep_team(self, rep_id: int | None) -> int | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep.team_id if rep else None

    def rep_name(self, rep_id: int | None) -> str | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep.name if rep else None

    def team_name(self, team_id: int | None) -> str | None:
        team = self.teams.get(team_id) if team_id is not None else None
        return team.name if team else None

    def coaching(self, rep_id: int, period: str) -> tuple[str | None, str | None]:
        row = self.session.scalars(
            select(CoachingRow).where(
                versioning.visible(CoachingRow, self.version),
                CoachingRow.rep_id == rep_id,
                CoachingRow.period == period,
            )
        ).first()
        return (row.coaching_focus, row.focus_reason) if row else (None, None)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def _money(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):,.0f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.0%}"


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = versioning.clean(record)
    for k, v in out.items():
        if isinstance(v, date):
            out[k] = v.isoformat()
    return out


def _target_candidate(ctx: _Context, event_type: str, row: dict[str, Any], what: str) -> Candidate:
    subject_type = str(row["subject_type"])
    rep_id = int(row["rep_id"]) if subject_type == "rep" else None
    team_id = None if pd.isna(row["team_id"]) else int(row["team_id"])
    name = ctx.rep_name(rep_id) if rep_id is not None else ctx.team_name(team_id)
    figures = {f: row[f] for f in ROW_FIGURES}
    data: dict[str, Any] = {
        "subject_name": name,
        "rep_name": ctx.rep_name(rep_id),
        "team_name": ctx.team_name(team_id),
        **figures,
        "performance_row_id": row["row_id"],
        "links": {
            "performance": f"/api/v1/reps/{rep_id}/performance?metric={row['metric']}"
            f"&start={row['period']}&end={row['period']}"
            if rep_id is not None
            else f"/api/v1/teams/{team_id}/performance?period={row['period']}",
            "formulas": "docs/metrics.md",
        },
    }
    summary = (
        f"{name} {what} the {row['period']} {row['metric']} target: "
        f"{_money(row['actual'])} of {_money(row['target'])} ({_pct(row['attainment'])}), "
        f"gap {_money(row['gap'])}."
    )
    if rep_id is not None:
        focus, reason = ctx.coaching(rep_id, str(row["period"]))
        data["coaching_focus"], data["focus_reason"] = focus, reason
        if focus:
            summary += f" Coaching focus: {focus}" + (f" ({reason})." if reason else ".")
        data["links"]["coaching"] = f"/api/v1/reps/{rep_id}/coaching?period={row['period']}"
    return Candidate(
        event_type=event_type,
        subject_type=subject_type,
        subject_id=rep_id if rep_id is not None else int(row["team_id"]),
        rep_id=rep_id,
        team_id=team_id,
        metric=str(row["metric"]),
        period=str(row["period"]),
        status=str(row["status"]),
        summary=summary,
        data=_clean(data),
    )


def _target_rows(ctx: _Context, rule: AlertRule) -> pd.DataFrame:
    rows = ctx.rows([p.label for p in ctx.periods(rule.period_kinds or ["month"])])
    if rule.metrics:
        rows = rows[rows["metric"].isin(rule.metrics)]
    return rows


def _missed(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    rows = _target_rows(ctx, rule)
    for row in rows[rows["status"] == "missed"].pipe(_records):
        yield _target_candidate(ctx, rule.event_type, row, "missed")


def _at_risk(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    rows = _target_rows(ctx, rule)
    running = rows[rows["status"].isin(["on_track", "at_risk"])]
    expected = running["expected_to_date"].astype("float64")
    pace = running["actual"].astype("float64").fillna(0.0) / expected.where(expected > 0)
    hit = (running["elapsed_fraction"].astype("float64") >= params["min_elapsed"]) & (
        pace < params["pace_below"]
    )
    for row, ratio in zip(running[hit].pipe(_records), pace[hit], strict=True):
        c = _target_candidate(ctx, rule.event_type, row, "is behind pace on")
        c.data["pace_ratio"] = float(ratio)
        c.summary += (
            f" Pace {ratio:.0%} of expected-to-date ({_money(row['expected_to_date'])}) "
            f"with {_pct(row['elapsed_fraction'])} of the period gone; "
            f"projected {_money(row['projected'])}."
        )
        yield c


def _persistent(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    rows = _target_rows(ctx, rule)
    n = int(params["consecutive_misses"])
    hit = (
        (rows["subject_type"] == "rep")
        & (rows["status"] == "missed")
        & (rows["consecutive_misses"].astype("int64") >= n)
    )
    for row in rows[hit].pipe(_records):
        c = _target_candidate(
            ctx, rule.event_type, row, f"has missed {row['consecutive_misses']} periods in a row:"
        )
        yield c


def _wide_gap(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    rows = _target_rows(ctx, rule)
    rows = rows[(rows["subject_type"] == "rep") & rows["team_id"].notna()]
    if rows.empty:
        return
    closed = rows["period_end"] < ctx.today
    parts = []
    for mask, below_by in ((closed, "attainment"), (~closed, "status")):
        if mask.any():
            part = rows[mask].copy()
            for col in ("actual", "target", "attainment"):
                part[col] = part[col].astype("float64")
            parts.append(
                rollups.rollup(
                    part,
                    by="team_id",
                    wide_gap_share=params["share_below"],
                    min_reps=int(params["min_reps"]),
                    below_by=below_by,  # type: ignore[arg-type]
                )
            )
    rolled = pd.concat(parts, ignore_index=True)
    for row in rolled[rolled["team_wide_gap"]].pipe(_records):
        team_id = int(row["team_id"])
        team = ctx.teams.get(team_id)
        manager_id = team.manager_id if team else None
        data = _clean(
            {
                "team_name": ctx.team_name(team_id),
                "manager_id": manager_id,
                "manager_name": ctx.rep_name(manager_id),
                **{k: row[k] for k in rollups.ROLLUP_COLUMNS if k not in ("metric", "period")},
                "links": {
                    "team": f"/api/v1/teams/{team_id}/performance?period={row['period']}",
                    "formulas": "docs/metrics.md",
                },
            }
        )
        yield Candidate(
            event_type=rule.event_type,
            subject_type="team",
            subject_id=team_id,
            rep_id=None,
            team_id=team_id,
            metric=str(row["metric"]),
            period=str(row["period"]),
            status=None,
            summary=(
                f"{row['reps_below_target']} of {row['reps_with_target']} reps in "
                f"{ctx.team_name(team_id)} are below their {row['period']} {row['metric']} "
                f"target ({_pct(row['share_below_target'])}); team attainment "
                f"{_pct(row['attainment'])}. Most of the team missing points at the team "
                f"(manager {ctx.rep_name(manager_id) or 'unassigned'}), not at single reps."
            ),
            data=data,
        )


def _big_win(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    settings = ctx.settings
    conn = ctx.session.connection()
    for p in ctx.periods(rule.period_kinds or ["month"]):
        deals = frames.deals_frame(conn, since=p.start, until=p.end, status="won")
        found = wins_analytics.wins(
            deals,
            rates=settings.currency_rates,
            kind=p.kind,
            cal=settings.calendar,
            min_amount=params.get("min_amount"),
            top_percentile=params["top_percentile"],
            periods=[p.label],
        )
        for row in found.pipe(_records):
            rep_id = int(row["rep_id"])
            team_id = ctx._rep_team(rep_id)
            yield Candidate(
                event_type=rule.event_type,
                subject_type="deal",
                subject_id=int(row["deal_id"]),
                rep_id=rep_id,
                team_id=team_id,
                metric="won_revenue",
                period=p.label,
                status="won",
                summary=(
                    f"{ctx.rep_name(rep_id)} won a {_money(row['amount'])} "
                    f"{settings.reporting_currency} deal in {p.label}: {row['reason']}."
                ),
                data=_clean(
                    {
                        **row,
                        "rep_name": ctx.rep_name(rep_id),
                        "team_name": ctx.team_name(team_id),
                        "currency": settings.reporting_currency,
                        "links": {"deal": f"/api/v1/deals/{int(row['deal_id'])}"},
                    }
                ),
            )


def _hygiene(ctx: _Context, rule: AlertRule, params: dict[str, float]) -> Iterator[Candidate]:
    conn = ctx.session.connection()
    deals = frames.deals_frame(conn, status="open")
    acts = frames.activities_frame(conn, since=ctx.today - timedelta(days=45), until=ctx.today)
    people = pd.DataFrame(
        {"rep_id": [r.id for r in ctx.reps.values() if r.role == "rep" and r.is_active]}
    )
    table = hygiene_analytics.hygiene(
        deals,
        acts,
        as_of=ctx.today,
        rates=ctx.settings.currency_rates,
        tz=ctx.settings.timezone,
        reps=people,
    )
    hit = table["stale_deals"] >= params["stale_deals"]
    if "past_due_deals" in params:
        hit |= table["past_due_deals"] >= params["past_due_deals"]
    period = period_of(ctx.today, "month", ctx.settings.calendar).label
    for row in table[hit].pipe(_records):
        rep_id = int(row["rep_id"])
        yield Candidate(
            event_type=rule.event_type,
            subject_type="rep",
            subject_id=rep_id,
            rep_id=rep_id,
            team_id=ctx._rep_team(rep_id),
            metric=None,
            period=period,
            status=None,
            summary=(
                f"{ctx.rep_name(rep_id)} has {row['stale_deals']} open deals with no activity "
                f"in 30 days and {row['past_due_deals']} open deals past their close date "
                f"({row['activities_per_week']:.1f} activities logged per week)."
            ),
            data=_clean(
                {
                    **row,
                    "rep_name": ctx.rep_name(rep_id),
                    "as_of": ctx.today,
                    "links": {"hygiene": "/api/v1/hygiene"},
                }
            ),
        )


RULES = {
    "target.missed": _missed,
    "target.at_risk": _at_risk,
    "rep.persistent_underperformance": _persistent,
    "team.wide_gap": _wide_gap,
    "deal.big_win": _big_win,
    "crm.hygiene": _hygiene,
}


def evaluate(*, session: Session, settings: Settings, today: date | None = None) -> Result:
    """Raise the alerts the latest snapshot calls for, with their deliveries, once each.

    ``today`` defaults to the snapshot's own ``as_of``: alerts judge the figures at the date
    they were computed for.
    """
    rules = list(
        session.scalars(
            select(AlertRule).where(AlertRule.is_enabled.is_(True)).order_by(AlertRule.id)
        )
    )
    version = versioning.current_version(session)
    if not rules or version is None:
        return Result(alerts=[], deliveries=0, rules=len(rules), candidates=0)
    ctx = _Context(
        session=session,
        settings=settings,
        version=version,
        today=today or session.get(Snapshot, version).as_of,  # type: ignore[union-attr]
        reps={r.id: r for r in session.scalars(select(Rep))},
        teams={t.id: t for t in session.scalars(select(Team))},
    )
    edges = [(t.id, t.parent_id) for t in ctx.teams.values()]
    found: dict[str, tuple[AlertRule, Candidate]] = {}
    for rule in rules:
        scope = (
            teams_service.descendants(roots=rule.team_ids, edges=edges) if rule.team_ids else None
        )
        params = check_params(rule.event_type, dict(rule.params))
        for c in RULES[rule.event_type](ctx, rule, params):
            if scope is None or c.team_id in scope:
                found.setdefault(event_id(rule.id, c), (rule, c))
    existing = set()
    ids = list(found)
    for i in range(0, len(ids), 500):
        existing |= set(
            session.scalars(select(Alert.event_id).where(Alert.event_id.in_(ids[i : i + 500])))
        )
    created: list[Alert] = []
    for eid, (rule, c) in found.items():
        if eid in existing:
            continue
        alert = Alert(
            event_id=eid,
            event_type=c.event_type,
            rule_id=rule.id,
            subject_type=c.subject_type,
            subject_id=c.subject_id,
            rep_id=c.rep_id,
            team_id=c.team_id,
            metric=c.metric,
            period=c.period,
            status=c.status,
            summary=c.summary,
            data={"rule_name": rule.name, **c.data},
            snapshot_id=version,
        )
        session.add(alert)
        created.append(alert)
    session.flush()
    deliveries = webhooks_service.enqueue(session=session, settings=settings, alerts=created)
    return Result(alerts=created, deliveries=deliveries, rules=len(rules), candidates=len(found))
