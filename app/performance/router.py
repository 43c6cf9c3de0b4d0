from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.exceptions import NotFoundError
from app.core.pagination import CursorParam, LimitParam
from app.core.periods import parse
from app.http.deps import (
    MetricsReaderKey,
    RecordReaderKey,
    SessionDep,
    SettingsDep,
    TargetWriterKey,
)
from app.http.params import check_range
from app.performance import crm, service
from app.performance import record as coaching_record
from app.performance import summary as summaries
from app.performance.answers import empty_reason, require_snapshot
from app.performance.models import Snapshot
from app.performance.schemas import (
    CoachingRead,
    CoachingRecordRead,
    ComputeRequest,
    HygieneRead,
    LeaderboardRead,
    MetricName,
    PerformancePage,
    PeriodKind,
    SnapshotPage,
    SnapshotRead,
    Status,
    SubjectType,
    SummaryRead,
    TeamPerformanceRead,
    TrendRead,
    WinsRead,
)
from app.pipeline.jobs import service as jobs_service
from app.pipeline.jobs.schemas import JobRead
from app.reps import service as reps_service

router = APIRouter()
PeriodParam = Annotated[
    str | None, Query(description="2026-11, 2026-Q4, FY2026 (default: the current month)")
]
if TYPE_CHECKING:
    SortKey = str
else:
    # service.SORTABLE, ascending or '-' descending: anything else is a 422 listing them.
    SortKey = Literal[tuple(k for key in service.SORTABLE for k in (key, f"-{key}"))]


async def computed_on_param(
    session: SessionDep,
    computed_on: Annotated[
        date | None,
        Query(
            description="Answer with the figures as computed on this date: the latest snapshot "
            "computed on or before it (default: the latest). 404 before the first snapshot."
        ),
    ] = None,
) -> date | None:
    """The ``computed_on`` query parameter, 404 when no snapshot was computed by then
    (:mod:`app.performance.answers`)."""
    if computed_on is not None:
        await run_in_threadpool(require_snapshot, session, computed_on)
    return computed_on


ComputedOn = Annotated[date | None, Depends(computed_on_param)]


def _label(settings: Settings, period: str | None) -> str:
    return parse(period, settings.calendar).label if period else service.default_period(settings)


@router.get("/performance", response_model=PerformancePage, tags=["performance"])
def list_performance(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    period: PeriodParam = None,
    metric: MetricName | None = None,
    team_id: int | None = None,
    manager_id: int | None = None,
    status: Status | None = None,
    subject_type: SubjectType = "rep",
    sort: Annotated[
        SortKey,
        Query(
            description="attainment, gap, actual, pace_gap, projected, rep_name or status; "
            "prefix '-' for descending"
        ),
    ] = "attainment",
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> PerformancePage:
    """Every rep (or team) against target for a period: actual, target, gap, attainment,
    pacing, projection, status, rank, and the inputs of the metric's formula. Pages of one
    listing all come from the same snapshot. An empty page says why in `reason`."""
    items, next_cursor, version = service.list_performance(
        session=session,
        settings=settings,
        principal=principal,
        period=period,
        metric=metric,
        team_id=team_id,
        manager_id=manager_id,
        status=status,
        subject_type=subject_type,
        sort=sort,
        cursor=cursor,
        limit=limit,
        computed_on=computed_on,
    )
    reason = None
    if not items:
        filters = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("metric", metric),
                ("status", status),
                ("team_id", team_id),
                ("manager_id", manager_id),
            )
            if value is not None
        )
        reason = empty_reason(
            version,
            f"no {subject_type} figures against a target for {_label(settings, period)}"
            + (f" ({filters})" if filters else "")
            + (" past this cursor" if cursor else ""),
        )
    return PerformancePage(
        items=items,
        next_cursor=next_cursor,
        snapshot=service.snapshot(session, version),
        reason=reason,
    )


@router.get("/reps/{rep_id}/performance", response_model=PerformancePage, tags=["performance"])
def rep_performance(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    metric: MetricName | None = None,
    kind: PeriodKind = "month",
    from_: Annotated[str | None, Query(alias="from", description="First period")] = None,
    to: Annotated[str | None, Query(description="Last period (not before `from`)")] = None,
) -> PerformancePage:
    """A rep's history against target over a range of periods."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    reps_service.get(session=session, rep_id=rep_id)
    if from_ and to:
        check_range(
            ("from", parse(from_, settings.calendar, field="from").start),
            ("to", parse(to, settings.calendar, field="to").start),
        )
    items, version = service.rep_history(
        session=session,
        settings=settings,
        rep_id=rep_id,
        metric=metric,
        kind=kind,
        start=from_,
        end=to,
        computed_on=computed_on,
    )
    reason = None
    if not items:
        window = f"{kind}s" + (f" from {from_}" if from_ else "") + (f" to {to}" if to else "")
        what = f" for {metric}" if metric else ""
        reason = empty_reason(
            version, f"no figures against a target{what} for rep {rep_id} in the {window}"
        )
    return PerformancePage(items=items, snapshot=service.snapshot(session, version), reason=reason)


@router.get("/reps/{rep_id}/coaching", response_model=CoachingRead, tags=["performance"])
def rep_coaching(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    period: PeriodParam = None,
) -> CoachingRead:
    """The funnel drivers behind a rep's result and the one to coach, with the numbers
    (404 with the reason when the period has no coaching figures for the rep)."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    return service.coaching(
        session=session, settings=settings, rep_id=rep_id, period=period, computed_on=computed_on
    )


@router.get(
    "/reps/{rep_id}/coaching/record", response_model=CoachingRecordRead, tags=["performance"]
)
def rep_coaching_record(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    kind: PeriodKind = "month",
    periods: Annotated[
        int, Query(ge=1, le=36, description="Periods whose named foci are listed")
    ] = 12,
    horizon: Annotated[
        int, Query(ge=1, le=12, description="Following periods each focus is followed over")
    ] = 3,
    end: Annotated[
        str | None,
        Query(description="Last period (default: current); its kind wins over `kind`"),
    ] = None,
) -> CoachingRecordRead:
    """Did the coaching work? Each period a focus was named in, the named driver against the
    team then and in the following periods, with a verdict (improving, not_improving,
    worsening, resolved, too_early), and the focus named now with how long it has been named
    without improving. With nothing named, `items` is empty and `reason` says why."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    reps_service.get(session=session, rep_id=rep_id)
    return coaching_record.rep_record(
        session=session,
        settings=settings,
        rep_id=rep_id,
        kind=kind,
        periods=periods,
        horizon=horizon,
        end=end,
        computed_on=computed_on,
    )


@router.get("/reps/{rep_id}/trend", response_model=TrendRead, tags=["performance"])
def rep_trend(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    metric: MetricName = "won_revenue",
    kind: PeriodKind = "month",
    periods: Annotated[int, Query(ge=2, le=36)] = 6,
    end: Annotated[
        str | None, Query(description="Last period (default: current); its kind wins over `kind`")
    ] = None,
) -> TrendRead:
    """The rep's metric over the last `periods` periods: values, slope, direction. With no
    value in the window, `values` is empty and `reason` says why."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    reps_service.get(session=session, rep_id=rep_id)
    trend = service.rep_trend(
        session=session,
        settings=settings,
        rep_id=rep_id,
        metric=metric,
        kind=kind,
        periods=periods,
        end=end,
        computed_on=computed_on,
    )
    if end:
        kind = parse(end, settings.calendar, field="end").kind  # type: ignore[assignment]
    if trend.points or any(v is not None for v in trend.values):
        return trend
    window = f"the {periods} {kind}s up to {end or 'the current one'}"
    reason = empty_reason(trend.snapshot, f"no {metric} figures for rep {rep_id} in {window}")
    return trend.model_copy(update={"values": [], "reason": reason})


@router.get("/wins", response_model=WinsRead, tags=["performance"])
def list_wins(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    min_amount: Annotated[float | None, Query(ge=0, description="Absolute threshold")] = None,
    top_percentile: Annotated[float, Query(gt=0, le=100)] = 95.0,
) -> WinsRead:
    """Wins to recognise: won deals above a threshold or in the period's top percentile."""
    label = _label(settings, period)
    items = crm.list_wins(
        session=session,
        settings=settings,
        principal=principal,
        period=label,
        min_amount=min_amount,
        top_percentile=top_percentile,
    )
    reason = None
    if not items:
        reason = (
            f"no won deal in {label} is in the top {100 - top_percentile:g}% of the period "
            "(which needs 20 won deals)"
            + (f" or at least {min_amount:g}" if min_amount is not None else "")
        )
    return WinsRead(period=label, items=items, reason=reason)


@router.get("/hygiene", response_model=HygieneRead, tags=["performance"])
def hygiene(
    session: SessionDep,
    settings: SettingsDep,
    principal: RecordReaderKey,
    team_id: int | None = None,
) -> HygieneRead:
    """CRM hygiene per rep: open deals past their close date, open deals with no activity in
    30 days, and activities logged per week."""
    report = crm.hygiene_report(
        session=session, settings=settings, principal=principal, team_id=team_id
    )
    if report.items:
        return report
    scope = f" in team {team_id}" if team_id is not None else ""
    return report.model_copy(update={"reason": f"no active rep{scope} to report on"})


@router.get(
    "/teams/{team_id}/performance", response_model=TeamPerformanceRead, tags=["performance"]
)
def team_performance(
    team_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    period: PeriodParam = None,
) -> TeamPerformanceRead:
    """A team's rollup: attainment, share of reps below target, and the team-wide-gap flag
    (most reps missing: a management problem, not a rep problem)."""
    if not principal.can_see_team(team_id):
        raise NotFoundError(f"team {team_id} not found")
    answer = service.team_performance(
        session=session,
        settings=settings,
        principal=principal,
        team_id=team_id,
        period=period,
        computed_on=computed_on,
    )
    if answer.rows:
        return answer
    nothing = f"no figures against a target for team {team_id} or its reps in {answer.period}"
    return answer.model_copy(update={"reason": empty_reason(answer.snapshot, nothing)})


@router.get("/summary", response_model=SummaryRead, tags=["performance"])
def summary(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    period: PeriodParam = None,
    metric: MetricName = "won_revenue",
) -> SummaryRead:
    """A compact wallboard payload: totals, attainment distribution, team rollups, who is at
    risk (largest gap first, with coaching focus) and each source's last sync. Poll it with
    `If-None-Match`: it answers 304 until a sync or compute changes it."""
    answer = summaries.summary(
        session=session,
        settings=settings,
        principal=principal,
        period=period,
        metric=metric,
        computed_on=computed_on,
    )
    if answer.totals.get("reps"):
        return answer
    nothing = f"no rep figures against a {metric} target for {answer.period}"
    return answer.model_copy(update={"reason": empty_reason(answer.snapshot, nothing)})


@router.get("/leaderboard", response_model=LeaderboardRead, tags=["performance"])
def leaderboard(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    computed_on: ComputedOn,
    metric: MetricName = "won_revenue",
    period: PeriodParam = None,
    team_id: int | None = None,
    limit: LimitParam = 100,
) -> LeaderboardRead:
    """Reps ranked on a metric for a period (1 = best; lower-is-better metrics ascend)."""
    answer = service.leaderboard(
        session=session,
        settings=settings,
        principal=principal,
        period=period,
        metric=metric,
        team_id=team_id,
        limit=limit,
        computed_on=computed_on,
    )
    if answer.items:
        return answer
    scope = f" in team {team_id}" if team_id is not None else ""
    nothing = f"no {metric} figures for reps{scope} in {answer.period}"
    return answer.model_copy(update={"reason": empty_reason(answer.snapshot, nothing)})


@router.post(
    "/compute", response_model=JobRead, status_code=status.HTTP_202_ACCEPTED, tags=["performance"]
)
def run_compute(
    body: ComputeRequest, request: Request, session: SessionDep, _: TargetWriterKey
) -> JobRead:
    """Recompute now: only the periods touched by changed records, or all with `full`.
    Answers 202 with the job; follow it at `/api/v1/jobs/{id}`."""
    job = jobs_service.create(
        session=session,
        kind="compute",
        trigger="api",
        params={"full": body.full, "as_of": body.as_of.isoformat() if body.as_of else None},
    )
    session.commit()  # the job runs in its own transactions
    request.app.state.jobs.submit(job.id)
    session.refresh(job)
    return JobRead.model_validate(job)


@router.get("/snapshots", response_model=SnapshotPage, tags=["performance"])
def list_snapshots(session: SessionDep, _: TargetWriterKey, limit: LimitParam = 50) -> SnapshotPage:
    """Past computes, newest first: what was recomputed, how long it took, how much changed."""
    rows = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()).limit(limit))
    return SnapshotPage(items=[SnapshotRead.model_validate(s) for s in rows])
