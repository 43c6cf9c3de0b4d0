from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, status

from app.auth.service import Principal
from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import AdminKey, RecordReaderKey, SessionDep, SettingsDep, require_roles
from app.pipeline import sync as sync_engine
from app.pipeline.jobs import service as jobs_service
from app.pipeline.jobs.schemas import JobRead
from app.sources import service
from app.sources.models import QuarantinedRecord, Source, SyncRun
from app.sources.schemas import (
    QuarantinePage,
    QuarantineRead,
    SourceCreate,
    SourcePage,
    SourceRead,
    SourceUpdate,
    SyncRunPage,
    SyncRunRead,
)

router = APIRouter()

# Quarantined records are raw CRM rows, often with no known owner, so no team tree can scope
# them: only the roles that read every team's records may read them (not managers).
QuarantineReaderKey = Annotated[Principal, Depends(require_roles("admin", "analyst"))]


@router.post("", response_model=SourceRead, status_code=status.HTTP_201_CREATED)
def create_source(
    source_in: SourceCreate, session: SessionDep, settings: SettingsDep, _: AdminKey
) -> SourceRead:
    """Connect a CRM. Credentials are encrypted at rest and never returned."""
    source = service.create(session=session, settings=settings, source_in=source_in)
    return service.to_read(session, source)


@router.get("", response_model=SourcePage)
def list_sources(
    session: SessionDep, _: RecordReaderKey, cursor: CursorParam = None, limit: LimitParam = 100
) -> SourcePage:
    """CRM connections with their sync health: last success, last error, failures in a row."""
    rows, next_cursor = paginate(session, service.query(), Source.id, cursor=cursor, limit=limit)
    return SourcePage(items=[service.to_read(session, s) for s in rows], next_cursor=next_cursor)


@router.get("/{source_id}", response_model=SourceRead)
def read_source(source_id: int, session: SessionDep, _: RecordReaderKey) -> SourceRead:
    """One CRM connection with its sync health: last success, last error, failures in a row, last
    run. Credentials are never returned."""
    return service.to_read(session, service.get(session=session, source_id=source_id))


@router.patch("/{source_id}", response_model=SourceRead)
def update_source(
    source_id: int,
    source_in: SourceUpdate,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminKey,
) -> SourceRead:
    """Change a source's name, schedule, base URL, enabled flag or credentials (write-only)."""
    source = service.get(session=session, source_id=source_id)
    service.update(session=session, settings=settings, source=source, source_in=source_in)
    return service.to_read(session, source)


@router.get("/{source_id}/quarantine", response_model=QuarantinePage)
def list_quarantine(
    source_id: int,
    session: SessionDep,
    _: QuarantineReaderKey,
    object_type: Literal["owner", "deal", "activity", "rep"] | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> QuarantinePage:
    """Records that could not be loaded, with their reason and raw payload (admin and analyst:
    raw rows belong to no team tree a manager could be scoped to)."""
    service.get(session=session, source_id=source_id)
    rows, next_cursor = paginate(
        session,
        service.quarantine_query(source_id=source_id, object_type=object_type),
        QuarantinedRecord.id,
        cursor=cursor,
        limit=limit,
    )
    return QuarantinePage(
        items=[QuarantineRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post("/{source_id}/quarantine/replay", response_model=SyncRunRead)
def replay_quarantine(
    source_id: int, request: Request, session: SessionDep, settings: SettingsDep, _: AdminKey
) -> SyncRunRead:
    """Replay the quarantine now, without waiting for the next sync: records quarantined for
    an owner now known are stored, and records the mapping rejected (a stage or activity type
    the CRM's catalog lacked, a value the source's settings did not map) are mapped again with
    the CRM's catalogs read now and today's settings. Each stored record leaves quarantine.
    Answers the replay's run: `details.replayed`, `details.still_quarantined`, and
    `details.notices` when the CRM could not be read (those records wait for the next sync)."""
    service.get(session=session, source_id=source_id)
    run = sync_engine.replay_now(
        session_factory=request.app.state.sessionmaker, settings=settings, source_id=source_id
    )
    return SyncRunRead.model_validate(run)


@router.get("/{source_id}/runs", response_model=SyncRunPage)
def list_runs(
    source_id: int,
    session: SessionDep,
    _: RecordReaderKey,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> SyncRunPage:
    """Sync runs of a source, newest first: counts fetched, inserted, updated, deleted and
    quarantined, pages, duration and error."""
    service.get(session=session, source_id=source_id)
    rows, next_cursor = paginate(
        session, service.runs_query(source_id=source_id), SyncRun.id, cursor=cursor, limit=limit
    )
    return SyncRunPage(items=[SyncRunRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/{source_id}/sync", response_model=JobRead, status_code=status.HTTP_202_ACCEPTED)
def sync_now(source_id: int, request: Request, session: SessionDep, _: AdminKey) -> JobRead:
    """Sync this source now, then recompute what changed. Answers 202 with the job; follow
    its stage and progress at `/api/v1/jobs/{id}`."""
    return _queue_sync(request, session, source_id=source_id, params={})


@router.post("/{source_id}/resync", response_model=JobRead, status_code=status.HTTP_202_ACCEPTED)
def resync(source_id: int, request: Request, session: SessionDep, _: AdminKey) -> JobRead:
    """Re-read everything from the CRM, then mark deleted what it no longer returns (records
    purged past the CRM's own trail, changes it made without a new modification stamp). The
    current data stays readable meanwhile: records are corrected page by page and identical
    ones are not written. Answers 202 with the job (`result.sync.kind` is `resync`,
    `result.sync.reconciled` counts the records marked deleted per stream)."""
    return _queue_sync(request, session, source_id=source_id, params={"resync": True})


def _queue_sync(
    request: Request, session: SessionDep, *, source_id: int, params: dict[str, bool]
) -> JobRead:
    service.crm_source(session=session, source_id=source_id)
    job = jobs_service.create(
        session=session, kind="sync", source_id=source_id, trigger="api", params=params
    )
    session.commit()  # the job works in its own transactions, page by page
    request.app.state.jobs.submit(job.id)
    session.refresh(job)
    return JobRead.model_validate(job)
