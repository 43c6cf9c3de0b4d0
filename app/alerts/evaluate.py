"""Alert evaluation: turn the latest snapshot into alerts, each raised once.

Runs as the last stage of every compute job (sync → compute → alerts). Each enabled rule
looks at the current period and ``alert_lookback_periods`` before it, of its period kinds,
and yields candidates; a candidate's ``event_id`` hashes (rule, event type, subject, metric,
period), so a candidate already raised is skipped and re-running the jobs raises nothing new.
A status change is a new alert because it is a different rule type (``target.at_risk``
mid-period, then ``target.missed`` once the period closed).

The alerts already raised in the periods a rule looks at are judged again: updated when their
figures changed, resolved when their condition cleared (:mod:`app.alerts.lifecycle`); so each
rule also yields, for the subjects of open alerts that no longer meet its condition, a
candidate that does not ``hold``, with the figures they are resolved with.

New alerts, changed alerts and their webhook deliveries are written in one transaction (the
outbox). See docs/alerts.md for each rule type's condition and the numbers an alert carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import hygiene as hygiene_analytics
from analytics import rollups
from analytics import wins as wins_analytics
from analytics.currency import to_reporting_currency
from analytics.periods import Period
from app.alerts import lifecycle, stalled
from app.alerts.context import ROW_FIGURES, Context, clean, money, pct, records
from app.alerts.events import Event
from app.alerts.lifecycle import Candidate, Key
from app.alerts.models import Alert, AlertRule
from app.alerts.schemas import check_params
from app.core.base import utcnow
from app.core.config import Settings
from app.performance import frames, versioning
from app.performance.models import Snapshot
from app.reps.models import Rep
from app.teams import tree
from app.teams.models import Team

TARGET_EVENTS = ("target.missed", "target.at_risk", "rep.persistent_underperformance")


@dataclass
class Result:
    alerts: list[Alert]  # raised by this evaluation
    rules: int
    candidates: int  # subjects meeting a rule's condition, raised now or before
    updated: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    # The messages to send about changes to alerts raised before (raised ones are in alerts).
    events: list[Event] = field(default_factory=list)
    # Written by whoever sends the messages (app.pipeline.alerting), in the same transaction.
    deliveries: int = 0


def event_id(rule_id: int, c: Candidate) -> str:
    key = f"{rule_id}|{c.event_type}|{c.subject_type}:{c.subject_id}|{c.metric}|{c.period}"
    return "alrt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _target_candidate(
    ctx: Context, event_type: str, row: dict[str, Any], what: str, holds: bool = True
) -> Candidate:
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
        f"{money(row['actual'])} of {money(row['target'])} ({pct(row['attainment'])}), "
        f"gap {money(row['gap'])}."
    )
    if rep_id is not None:
        focus, reason = ctx.coaching(rep_id, str(row["period"]))
        data["coaching_focus"], data["focus_reason"] = focus, reason
        if focus and holds:
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
        data=clean(data),
        holds=holds,
    )


def _target_rows(ctx: Context, rule: AlertRule) -> pd.DataFrame:
    rows = ctx.rows([p.label for p in ctx.periods(rule.period_kinds or ["month"])])
    if rule.metrics:
        rows = rows[rows["metric"].isin(rule.metrics)]
    return rows


def _watched(rows: pd.DataFrame, hit: pd.Series, watch: frozenset[Key]) -> pd.DataFrame:
    """The target rows not meeting the condition whose subject has an open alert: the
    figures those alerts are resolved with."""
    rest = rows[~hit]
    if not watch or rest.empty:
        return rest.iloc[0:0]
    subject = rest["rep_id"].where(rest["subject_type"] == "rep", rest["team_id"])
    keep = [
        pd.notna(s) and (t, int(s), m, p) in watch
        for t, s, m, p in zip(
            rest["subject_type"], subject, rest["metric"], rest["period"], strict=True
        )
    ]
    return rest[keep]


def _target_rule(
    ctx: Context,
    rule: AlertRule,
    watch: frozenset[Key],
    hit: Callable[[pd.DataFrame], pd.Series],
    what: Callable[[dict[str, Any], bool], str],
) -> Iterator[Candidate]:
    """The candidates of a rule on target rows: the rows ``hit`` selects, and the watched
    rows it no longer selects; ``what(row, holds)`` is the verb of the summary."""
    rows = _target_rows(ctx, rule)
    mask = hit(rows)
    for row in rows[mask].pipe(records):
        yield _target_candidate(ctx, rule.event_type, row, what(row, True))
    for row in _watched(rows, mask, watch).pipe(records):
        yield _target_candidate(ctx, rule.event_type, row, what(row, False), holds=False)


def _missed(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    yield from _target_rule(
        ctx,
        rule,
        watch,
        lambda rows: rows["status"] == "missed",
        lambda row, holds: "missed" if holds else "no longer misses",
    )


def _pace(rows: pd.DataFrame) -> pd.Series:
    expected = rows["expected_to_date"].astype("float64")
    return rows["actual"].astype("float64").fillna(0.0) / expected.where(expected > 0)


def _at_risk(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    def hit(rows: pd.DataFrame) -> pd.Series:
        running = rows["status"].isin(["on_track", "at_risk"])
        elapsed = rows["elapsed_fraction"].astype("float64") >= params["min_elapsed"]
        return running & elapsed & (_pace(rows) < params["pace_below"])

    def what(row: dict[str, Any], holds: bool) -> str:
        if holds:
            return "is behind pace on"
        if row["status"] in ("on_track", "at_risk"):
            return "is back on pace for"
        return f"closed the period ({row['status']}) on"

    for c in _target_rule(ctx, rule, watch, hit, what):
        if not c.holds and c.status not in ("on_track", "at_risk"):
            c.resolution = "period_closed"
        if c.holds:
            row = c.data
            ratio = float(row["actual"] or 0.0) / float(row["expected_to_date"])
            c.data["pace_ratio"] = ratio
            c.summary += (
                f" Pace {ratio:.0%} of expected-to-date ({money(row['expected_to_date'])}) "
                f"with {pct(row['elapsed_fraction'])} of the period gone; "
                f"projected {money(row['projected'])}."
            )
        yield c


def _persistent(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    n = int(params["consecutive_misses"])

    def hit(rows: pd.DataFrame) -> pd.Series:
        return (
            (rows["subject_type"] == "rep")
            & (rows["status"] == "missed")
            & (rows["consecutive_misses"].astype("int64") >= n)
        )

    def what(row: dict[str, Any], holds: bool) -> str:
        misses = row["consecutive_misses"]
        if holds:
            return f"has missed {misses} periods in a row:"
        return f"no longer has {n} misses in a row ({misses} now) on"

    yield from _target_rule(ctx, rule, watch, hit, what)


def _wide_gap_summary(ctx: Context, row: dict[str, Any], manager_id: int | None) -> str:
    team_id = int(row["team_id"])
    summary = (
        f"{row['reps_below_target']} of {row['reps_with_target']} reps in "
        f"{ctx.team_name(team_id)} are below their {row['period']} {row['metric']} "
        f"target ({pct(row['share_below_target'])}); team attainment "
        f"{pct(row['attainment'])}."
    )
    if row["team_wide_gap"]:
        summary += (
            " Most of the team missing points at the team "
            f"(manager {ctx.rep_name(manager_id) or 'unassigned'}), not at single reps."
        )
    return summary


def _wide_gap_rollup(ctx: Context, rule: AlertRule, params: dict[str, float]) -> pd.DataFrame:
    """Every team's rollup of its reps' rows, ``team_wide_gap`` set where the rule fires."""
    rows = _target_rows(ctx, rule)
    rows = rows[(rows["subject_type"] == "rep") & rows["team_id"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=["team_id", *rollups.ROLLUP_COLUMNS])
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
    return pd.concat(parts, ignore_index=True)


def _wide_gap(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    for row in _wide_gap_rollup(ctx, rule, params).pipe(records):
        team_id = int(row["team_id"])
        holds = bool(row["team_wide_gap"])
        if not holds and ("team", team_id, row["metric"], row["period"]) not in watch:
            continue
        team = ctx.teams.get(team_id)
        manager_id = team.manager_id if team else None
        data = clean(
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
            summary=_wide_gap_summary(ctx, row, manager_id),
            data=data,
            holds=holds,
        )


def _win_candidate(ctx: Context, rule: AlertRule, p: Period, row: dict[str, Any]) -> Candidate:
    settings = ctx.settings
    rep_id = int(row["rep_id"])
    team_id = ctx.rep_team(rep_id)
    reason = f": {row['reason']}" if row.get("reason") else ""
    return Candidate(
        event_type=rule.event_type,
        subject_type="deal",
        subject_id=int(row["deal_id"]),
        rep_id=rep_id,
        team_id=team_id,
        metric="won_revenue",
        period=p.label,
        status="won",
        summary=(
            f"{ctx.rep_name(rep_id)} won a {money(row['amount'])} "
            f"{settings.reporting_currency} deal in {p.label}{reason}."
        ),
        data=clean(
            {
                **row,
                "rep_name": ctx.rep_name(rep_id),
                "team_name": ctx.team_name(team_id),
                "currency": settings.reporting_currency,
                "links": {"deal": f"/api/v1/deals/{int(row['deal_id'])}"},
            }
        ),
    )


def _big_win(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    """A win stays a win: an open alert's deal that is still won in the period holds even
    when bigger wins pushed it out of the top percentile; only a deal no longer won there
    (lost, reopened, deleted, moved to another period) finds no candidate and is resolved."""
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
        for row in found.pipe(records):
            yield _win_candidate(ctx, rule, p, row)
        kept = {d for t, d, _, label in watch if t == "deal" and label == p.label}
        kept -= set(found["deal_id"].astype("int64"))
        closes = pd.to_datetime(deals["close_date"])
        live = deals[
            deals["deal_id"].isin(kept)
            & ~deals["is_deleted"].astype(bool)
            & closes.between(pd.Timestamp(p.start), pd.Timestamp(p.end))
        ]
        amounts = to_reporting_currency(live["amount"], live["currency"], settings.currency_rates)
        for deal_id, rep_id, amount in zip(live["deal_id"], live["rep_id"], amounts, strict=True):
            row = {"deal_id": deal_id, "rep_id": rep_id, "period": p.label, "amount": amount}
            yield _win_candidate(ctx, rule, p, row)


def _hygiene(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
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
    period = ctx.month()
    for row, holds in zip(table.pipe(records), hit, strict=True):
        rep_id = int(row["rep_id"])
        if not holds and ("rep", rep_id, None, period) not in watch:
            continue
        yield Candidate(
            event_type=rule.event_type,
            subject_type="rep",
            subject_id=rep_id,
            rep_id=rep_id,
            team_id=ctx.rep_team(rep_id),
            metric=None,
            period=period,
            status=None,
            summary=(
                f"{ctx.rep_name(rep_id)} has {row['stale_deals']} open deals with no activity "
                f"in 30 days and {row['past_due_deals']} open deals past their close date "
                f"({row['activities_per_week']:.1f} activities logged per week)."
            ),
            data=clean(
                {
                    **row,
                    "rep_name": ctx.rep_name(rep_id),
                    "as_of": ctx.today,
                    "links": {"hygiene": "/api/v1/hygiene"},
                }
            ),
            holds=bool(holds),
        )


RULES: dict[
    str, Callable[[Context, AlertRule, dict[str, float], frozenset[Key]], Iterator[Candidate]]
] = {
    "target.missed": _missed,
    "target.at_risk": _at_risk,
    "rep.persistent_underperformance": _persistent,
    "team.wide_gap": _wide_gap,
    "deal.big_win": _big_win,
    "crm.hygiene": _hygiene,
    "rep.coaching_stalled": stalled.coaching_stalled,
}


def _periods(ctx: Context, rule: AlertRule) -> set[str]:
    """The periods a rule looks at: its alerts there are judged again."""
    if rule.event_type == "crm.hygiene":
        return {ctx.month()}
    return {p.label for p in ctx.periods(rule.period_kinds or ["month"])}


def _prior(ctx: Context, rules: list[AlertRule]) -> dict[int, list[Alert]]:
    """Each rule's alerts already raised in the periods it looks at."""
    periods = {rule.id: _periods(ctx, rule) for rule in rules}
    labels = sorted(set().union(*periods.values()))
    out: dict[int, list[Alert]] = {}
    for alert in ctx.session.scalars(
        select(Alert)
        .where(Alert.rule_id.in_(list(periods)), Alert.period.in_(labels))
        .order_by(Alert.id)
    ):
        assert alert.rule_id is not None
        if alert.period in periods[alert.rule_id]:
            out.setdefault(alert.rule_id, []).append(alert)
    return out


def evaluate(*, session: Session, settings: Settings, today: date | None = None) -> Result:
    """Raise the alerts the latest snapshot calls for, once each, and update or resolve the
    ones raised before in the periods each rule looks at; the messages about them are in the
    result, for :func:`app.pipeline.alerting.evaluate` to deliver.

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
        return Result(alerts=[], rules=len(rules), candidates=0)
    ctx = Context(
        session=session,
        settings=settings,
        version=version,
        today=today or session.get(Snapshot, version).as_of,  # type: ignore[union-attr]
        reps={r.id: r for r in session.scalars(select(Rep))},
        teams={t.id: t for t in session.scalars(select(Team))},
    )
    edges = [(t.id, t.parent_id) for t in ctx.teams.values()]
    prior = _prior(ctx, rules)
    changes = lifecycle.Changes()
    now = utcnow()
    candidates = 0
    for rule in rules:
        scope = tree.descendants(roots=rule.team_ids, edges=edges) if rule.team_ids else None
        params = check_params(rule.event_type, dict(rule.params))
        alerts = prior.get(rule.id, [])
        watch = frozenset(lifecycle.key(a) for a in alerts if a.state == "open")
        found: dict[str, Candidate] = {}
        for c in RULES[rule.event_type](ctx, rule, params, watch):
            if scope is None or c.team_id in scope:
                found.setdefault(event_id(rule.id, c), c)
        candidates += sum(c.holds for c in found.values())
        lifecycle.reconcile(
            changes,
            rule=rule,
            found=found,
            prior=alerts,
            scope=scope,
            version=version,
            now=now,
        )
    session.add_all(changes.created)
    session.flush()
    return Result(
        alerts=changes.created,
        events=changes.events,
        rules=len(rules),
        candidates=candidates,
        updated=changes.updated,
        resolved=changes.resolved,
    )
