from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from app.deps import (
    MetricsReaderKey,
    RecordReaderKey,
    SessionDep,
    SettingsDep,
    TargetWriterKey,
)
from app.exceptions import NotFoundError
from app.jobs import service as jobs_service
from app.jobs.schemas import JobRead
from app.pagination import CursorParam, LimitParam
from app.performance import service
from app.performance.models import Snapshot
from app.performance.schemas import (
    CoachingRead,
    ComputeRequest,
    LeaderboardRead,
    PerformancePage,
    SnapshotPage,
    SnapshotRead,
    Status,
    SummaryRead,
    TeamPerformanceRead,
)

router = APIRouter()
AsOf = Annotated[
    date | None,
    Query(description="Answer with the figures as they were computed on this date."),
]
PeriodParam = Annotated[
    str | None, Query(description="2026-11, 2026-Q4, FY2026 (default: the current month)")
]


@router.get("/performance", response_model=PerformancePage, tags=["performance"])
def list_performance(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    metric: str | None = None,
    team_id: int | None = None,
    manager_id: int | None = None,
    status: Status | None = None,
    subject_type: Literal["rep", "team"] = "rep",
    sort: str = Query(
        "attainment",
        description="attainment, gap, actual, pace_gap, "
        "projected, rep_name or status; prefix '-' for descending",
    ),
    as_of: AsOf = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> PerformancePage:
    """Every rep (or team) against target for a period: actual, target, gap, attainment,
    pacing, projection, status, rank, and the inputs of the metric's formula. Pages of one
    listing all come from the same snapshot."""
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
        as_of=as_of,
    )
    return PerformancePage(
        items=items, next_cursor=next_cursor, snapshot=service.snapshot(session, version)
    )


@router.get("/reps/{rep_id}/performance", response_model=PerformancePage, tags=["performance"])
def rep_performance(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    metric: str | None = None,
    kind: Literal["month", "quarter", "year"] = "month",
    from_: Annotated[str | None, Query(alias="from", description="First period")] = None,
    to: Annotated[str | None, Query(description="Last period")] = None,
    as_of: AsOf = None,
) -> PerformancePage:
    """A rep's history against target over a range of periods."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    items, version = service.rep_history(
        session=session,
        settings=settings,
        rep_id=rep_id,
        metric=metric,
        kind=kind,
        start=from_,
        end=to,
        as_of=as_of,
    )
    return PerformancePage(items=items, snapshot=service.snapshot(session, version))


@router.get("/reps/{rep_id}/coaching", response_model=CoachingRead, tags=["performance"])
def rep_coaching(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    as_of: AsOf = None,
) -> CoachingRead:
    """The funnel drivers behind a rep's result and the one to coach, with the numbers."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    return service.coaching(
        session=session, settings=settings, rep_id=rep_id, period=period, as_of=as_of
    )


@router.get("/reps/{rep_id}/trend", tags=["performance"])
def rep_trend(
    rep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    metric: str = "won_revenue",
    kind: Literal["month", "quarter", "year"] = "month",
    periods: Annotated[int, Query(ge=2, le=36)] = 6,
    end: Annotated[str | None, Query(description="Last period (default: current)")] = None,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """The rep's metric over the last `periods` periods: values, slope, direction."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    return service.rep_trend(
        session=session,
        settings=settings,
        rep_id=rep_id,
        metric=metric,
        kind=kind,
        periods=periods,
        end=end,
        as_of=as_of,
    )


@router.get("/wins", tags=["performance"])
def list_wins(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    min_amount: Annotated[float | None, Query(ge=0, description="Absolute threshold")] = None,
    top_percentile: Annotated[float, Query(gt=0, le=100)] = 95.0,
) -> dict[str, Any]:
    """Wins to recognise: won deals above a threshold or in the period's top percentile."""
    return {
        "items": service.list_wins(
            session=session,
            settings=settings,
            principal=principal,
            period=period,
            min_amount=min_amount,
            top_percentile=top_percentile,
        )
    }


@router.get("/hygiene", tags=["performance"])
def hygiene(
    session: SessionDep,
    settings: SettingsDep,
    principal: RecordReaderKey,
    team_id: int | None = None,
) -> dict[str, Any]:
    """CRM hygiene per rep: open deals past their close date, open deals with no activity in
    30 days, and activities logged per week."""
    return service.hygiene_report(
        session=session, settings=settings, principal=principal, team_id=team_id
    )


@router.get(
    "/teams/{team_id}/performance", response_model=TeamPerformanceRead, tags=["performance"]
)
def team_performance(
    team_id: int,
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    as_of: AsOf = None,
) -> TeamPerformanceRead:
    """A team's rollup: attainment, share of reps below target, and the team-wide-gap flag
    (most reps missing: a management problem, not a rep problem)."""
    if not principal.can_see_team(team_id):
        raise NotFoundError(f"team {team_id} not found")
    return service.team_performance(
        session=session,
        settings=settings,
        principal=principal,
        team_id=team_id,
        period=period,
        as_of=as_of,
    )


@router.get("/summary", response_model=SummaryRead, tags=["performance"])
def summary(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    period: PeriodParam = None,
    metric: str = "won_revenue",
    as_of: AsOf = None,
) -> SummaryRead:
    """A compact wallboard payload: totals, attainment distribution, team rollups, who is at
    risk (largest gap first, with coaching focus) and each source's last sync. Poll it with
    `If-None-Match`: it answers 304 until a sync or compute changes it."""
    return service.summary(
        session=session,
        settings=settings,
        principal=principal,
        period=period,
        metric=metric,
        as_of=as_of,
    )


@router.get("/leaderboard", response_model=LeaderboardRead, tags=["performance"])
def leaderboard(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    metric: str = "won_revenue",
    period: PeriodParam = None,
    team_id: int | None = None,
    limit: LimitParam = 100,
    as_of: AsOf = None,
) -> LeaderboardRead:
    """Reps ranked on a metric for a period (1 = best; lower-is-better metrics ascend)."""
    return service.leaderboard(
        session=session,
        settings=settings,
        principal=principal,
        period=period,
        metric=metric,
        team_id=team_id,
        limit=limit,
        as_of=as_of,
    )


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
