from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import RecordReaderKey, SessionDep
from app.pipeline.jobs import service
from app.pipeline.jobs.models import Job
from app.pipeline.jobs.schemas import JobPage, JobRead

router = APIRouter()


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    _: RecordReaderKey,
    kind: Literal["sync", "compute"] | None = None,
    status: Literal["queued", "running", "succeeded", "paused", "failed"] | None = None,
    source_id: int | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> JobPage:
    """Recent runs of the pipeline (oldest first; page with the cursor)."""
    rows, next_cursor = paginate(
        session,
        service.query(kind=kind, status=status, source_id=source_id),
        Job.id,
        cursor=cursor,
        limit=limit,
    )
    return JobPage(items=[JobRead.model_validate(j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRead)
def read_job(job_id: int, session: SessionDep, _: RecordReaderKey) -> JobRead:
    """Stage, progress (records, pages), start, end, outcome and error of one run."""
    return JobRead.model_validate(service.get(session=session, job_id=job_id))
