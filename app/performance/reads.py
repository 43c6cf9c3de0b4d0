"""What the read answers share: who is who (names, each rep's team in a period), paging
cursors, and a snapshot's performance rows as API items with their formula inputs and ranks."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.metrics import METRICS
from analytics.periods import FiscalCalendar
from app.core.exceptions import InvalidInputError
from app.performance import ranks, versioning
from app.performance.membership import teams_of_movers
from app.performance.models import MetricRow, PerformanceRow
from app.performance.schemas import (
    PathToTarget,
    PerformanceRead,
    ProjectionError,
    ProjectionErrors,
    ProjectionMethod,
)
from app.reps.models import Rep
from app.teams.models import Team

PERSISTENT_AFTER = 3


class RepName(NamedTuple):
    id: int
    name: str
    team_id: int | None
    manager_id: int | None
    role: str
    is_active: bool


def rep_names(
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


def page_cursor(offset: int, version: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}:v:{version}".encode()).decode().rstrip("=")


def parse_cursor(cursor: str | None) -> tuple[int, int | None]:
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


def formula_inputs(
    session: Session, version: int, rows: Sequence[PerformanceRow]
) -> dict[Any, Any]:
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


def _error(
    method: ProjectionMethod, mape: float | None, bias: float | None, periods: int | None
) -> ProjectionError | None:
    """A method's stored error, None without a period measured."""
    if not periods or mape is None or bias is None:
        return None
    return ProjectionError(method=method, mape=mape, bias=bias, periods=periods)


def path_of(row: PerformanceRow) -> PathToTarget | None:
    """The row's stored path to target (``details``, written by the compute), or None."""
    stored = (row.details or {}).get("path_to_target")
    if not stored or row.gap is None:
        return None
    figures = {k: v for k, v in stored.items() if k in PathToTarget.model_fields}
    return PathToTarget(
        **figures,
        metric=row.metric,
        period=row.period,
        gap=row.gap,
        sentence=stored["path_to_target"],
    )


def to_read(
    row: PerformanceRow,
    reps: dict[int, RepName],
    teams: dict[int, str],
    values: dict[str, Any] | None,
) -> PerformanceRead:
    rep = reps.get(row.rep_id) if row.rep_id is not None else None
    team_id = rep.team_id if rep is not None else row.team_id
    metric = METRICS.get(row.metric)
    inputs = {k: (values or {}).get(k) for k in (metric.inputs if metric else ())}
    path = path_of(row)
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
        projection_method=row.projection_method,
        projection=row.projection,
        projection_errors=ProjectionErrors(
            run_rate=_error("run_rate", row.run_rate_mape, row.run_rate_bias, row.run_rate_periods),
            pipeline=_error("pipeline", row.pipeline_mape, row.pipeline_bias, row.pipeline_periods),
        ),
        consecutive_misses=row.consecutive_misses,
        persistent_underperformer=row.consecutive_misses >= PERSISTENT_AFTER,
        path_to_target=path.sentence if path else None,
        path_to_target_figures=path,
        inputs=inputs,
        records=_records_link(row),
        snapshot=row.valid_from,
    )


def reads(
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
    reps, teams = names or rep_names(session)
    values = formula_inputs(session, version, rows)
    items = [
        to_read(
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
        ranks.apply(session, version, items, team_of=team_of(reps))
    return items


def team_of(reps: dict[int, RepName]) -> dict[int, int | None]:
    return {rep_id: rep.team_id for rep_id, rep in reps.items()}


def int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def float_or_none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)


ROLLUP_INPUT = ("rep_id", "team_id", "metric", "period", "actual", "target", "attainment", "status")


def rollup_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rep rows as :func:`analytics.rollups.rollup` reads them (figures as float64, NaN for
    a missing one)."""
    frame = pd.DataFrame(rows, columns=list(ROLLUP_INPUT))
    for col in ("actual", "target", "attainment"):
        frame[col] = frame[col].astype("float64")
    return frame
