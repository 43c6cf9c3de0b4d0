from __future__ import annotations

from fastapi import APIRouter, File, Query, Response, UploadFile, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.exceptions import NotFoundError, PayloadTooLargeError
from app.core.pagination import CursorParam, LimitParam, paginate
from app.core.periods import parse
from app.http.deps import MetricsReaderKey, SessionDep, SettingsDep, TargetWriterKey
from app.performance import suggest
from app.performance.schemas import MetricName
from app.targets import service
from app.targets.models import Target
from app.targets.schemas import (
    BulkResult,
    BulkTargets,
    SuggestRequest,
    SuggestResponse,
    TargetCreate,
    TargetPage,
    TargetRead,
    TargetUpdate,
)

router = APIRouter()


@router.post(
    "",
    response_model=TargetRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "description": "An existing target for this subject, metric and period "
            "was updated (upsert)."
        }
    },
)
def create_target(
    target_in: TargetCreate,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    _: TargetWriterKey,
) -> TargetRead:
    """Create a target, or update the one for the same (rep or team, metric, period)."""
    target, created = service.upsert(session=session, target_in=target_in, cal=settings.calendar)
    if not created:
        response.status_code = status.HTTP_200_OK
    return TargetRead.model_validate(target)


@router.get("", response_model=TargetPage)
def list_targets(
    session: SessionDep,
    settings: SettingsDep,
    principal: MetricsReaderKey,
    rep_id: int | None = None,
    team_id: int | None = None,
    metric: MetricName | None = None,
    period: str | None = Query(None, description="2026-11, 2026-Q4, FY2026, 2026-W48"),
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> TargetPage:
    """Targets, filtered by rep, team, metric or period (a manager sees their team tree's)."""
    stmt = service.query(
        rep_id=rep_id,
        team_id=team_id,
        metric=metric,
        # Stored by label: a label that does not parse is a 422, not an empty page.
        period=parse(period, settings.calendar).label if period else None,
        visible_rep_ids=principal.rep_ids,
        visible_team_ids=principal.team_ids,
    )
    rows, next_cursor = paginate(session, stmt, Target.id, cursor=cursor, limit=limit)
    return TargetPage(items=[TargetRead.model_validate(t) for t in rows], next_cursor=next_cursor)


@router.post("/bulk", response_model=BulkResult)
def bulk_targets(
    body: BulkTargets, session: SessionDep, settings: SettingsDep, _: TargetWriterKey
) -> BulkResult:
    """Upsert many targets at once (e.g. accepted suggestions). All or nothing."""
    rows = service.validate_rows(
        session=session, rows=[i.model_dump() for i in body.items], cal=settings.calendar
    )
    return _bulk(session, rows)


@router.post("/upload", response_model=BulkResult)
async def upload_targets(
    session: SessionDep,
    settings: SettingsDep,
    _: TargetWriterKey,
    file: UploadFile = File(
        description="CSV: rep_email|rep_id|team|team_id, metric, period, value"
    ),
) -> BulkResult:
    """Upsert targets from a CSV file. Any bad row: 422 listing every bad row, nothing written."""
    content = await file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise PayloadTooLargeError(f"file larger than {settings.max_upload_bytes} bytes")
    # Parsing and writing wait for the write lock: off the event loop.
    return await run_in_threadpool(_upload, session, settings, content)


def _upload(session: Session, settings: Settings, content: bytes) -> BulkResult:
    raw = service.rows_from_csv(content=content, max_rows=settings.max_csv_rows)
    rows = service.validate_rows(session=session, rows=raw, cal=settings.calendar)
    return _bulk(session, rows)


def _bulk(session: SessionDep, rows: list[service._Row]) -> BulkResult:
    targets, created, updated, unchanged = service.upsert_many(session=session, rows=rows)
    return BulkResult(
        created=created,
        updated=updated,
        unchanged=unchanged,
        items=[TargetRead.model_validate(t) for t in targets],
    )


@router.post("/suggest", response_model=SuggestResponse)
def suggest_targets(
    request: SuggestRequest, session: SessionDep, settings: SettingsDep, _: TargetWriterKey
) -> SuggestResponse:
    """Propose targets from history, for review. Nothing is written until the accepted items
    are posted to `/api/v1/targets/bulk`."""
    return SuggestResponse(
        items=suggest.suggest(session=session, request=request, settings=settings)
    )


@router.get("/{target_id}", response_model=TargetRead)
def read_target(target_id: int, session: SessionDep, principal: MetricsReaderKey) -> TargetRead:
    """One target (404 for a manager outside its team tree)."""
    target = service.get(session=session, target_id=target_id)
    if not (
        principal.can_see_rep(target.rep_id)
        if target.rep_id is not None
        else principal.can_see_team(target.team_id)
    ):
        raise NotFoundError(f"target {target_id} not found")
    return TargetRead.model_validate(target)


@router.patch("/{target_id}", response_model=TargetRead)
def update_target(
    target_id: int, target_in: TargetUpdate, session: SessionDep, _: TargetWriterKey
) -> TargetRead:
    """Change a target's value; the figures follow at the next compute."""
    target = service.get(session=session, target_id=target_id)
    target.value = target_in.value
    session.flush()
    return TargetRead.model_validate(target)


@router.delete("/{target_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_target(target_id: int, session: SessionDep, _: TargetWriterKey) -> None:
    """Delete a target; the figures follow at the next compute."""
    session.delete(service.get(session=session, target_id=target_id))
