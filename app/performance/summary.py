"""The wallboard summary of one period and metric (``GET /summary``)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import rollups
from app.auth.service import Principal
from app.core.config import Settings
from app.core.periods import parse
from app.performance import versioning
from app.performance.models import CoachingRow, PerformanceRow, Snapshot
from app.performance.reads import RepName, float_or_none, rep_names, rollup_frame
from app.performance.schemas import SummaryRead, SummaryRep, SummarySource, SummaryTeam
from app.performance.service import default_period, version_for
from app.sources.models import Source

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
    label = parse(period, settings.calendar).label if period else default_period(settings)
    version = version_for(session, computed_on)
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
        sources=_sources(session, principal),
    )
    if version is None:
        return empty
    snap = session.get(Snapshot, version)
    reps, teams = rep_names(session, label, settings.calendar)
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
    for r in rows:
        bands[_band(r.attainment if r.target else None)] += 1
    with_target = [r for r in rows if r.target]
    actual = sum(r.actual or 0.0 for r in with_target)
    target = sum(r.target or 0.0 for r in with_target)
    below = [r for r in with_target if r.status in rollups.BELOW_STATUSES]
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
            "teams": _teams(rows, reps, teams),
            "at_risk": _at_risk(session, version, label, at_risk, reps),
        }
    )


def _sources(session: Session, principal: Principal) -> list[SummarySource]:
    """How fresh each source is."""
    return [
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


def _teams(
    rows: list[PerformanceRow], reps: dict[int, RepName], teams: dict[int, str]
) -> list[SummaryTeam]:
    """Each team's rollup of its reps' rows (each rep on their team of the period)."""
    frame = rollup_frame(
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
    if not len(frame):
        return []
    rolled = rollups.rollup(frame, by="team_id", below_by="status")
    return [
        SummaryTeam(
            team_id=int(t["team_id"]),
            team_name=teams.get(int(t["team_id"]), ""),
            reps=int(t["reps"]),
            actual=float_or_none(t["actual"]),
            target=float_or_none(t["target"]),
            attainment=float_or_none(t["attainment"]),
            reps_below_target=int(t["reps_below_target"]),
            share_below_target=float_or_none(t["share_below_target"]),
            team_wide_gap=bool(t["team_wide_gap"]),
        )
        for t in rolled.to_dict("records")
    ]


def _at_risk(
    session: Session,
    version: int,
    label: str,
    rows: list[PerformanceRow],
    reps: dict[int, RepName],
) -> list[SummaryRep]:
    """The reps of ``rows`` (at risk or missed, in order), with their coaching focus."""
    focus = {
        rep_id: f
        for rep_id, f in session.execute(
            select(CoachingRow.rep_id, CoachingRow.coaching_focus).where(
                versioning.visible(CoachingRow, version), CoachingRow.period == label
            )
        )
    }
    return [
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
        for r in rows
    ]
