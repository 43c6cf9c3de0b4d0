from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.exceptions import InvalidInputError, PayloadTooLargeError
from app.http.deps import AdminKey, SessionDep, SettingsDep
from app.pipeline import ingest
from app.pipeline.imports import service
from app.pipeline.imports.mapping import Mapping
from app.pipeline.imports.schemas import ImportRead
from app.pipeline.jobs import service as jobs_service

router = APIRouter()


async def _read(file: UploadFile | None, limit: int) -> bytes | None:
    if file is None:
        return None
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLargeError(f"{file.filename}: larger than {limit} bytes")
    return content


@router.post("", response_model=ImportRead)
async def create_import(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminKey,
    mapping: UploadFile = File(description="Mapping file (YAML), as examples/*/mapping.yaml"),
    reps: UploadFile | None = File(None, description="Reps and teams CSV"),
    deals: UploadFile | None = File(None, description="Deals CSV"),
    activities: UploadFile | None = File(None, description="Activities CSV"),
    strict: bool = Form(False, description="Refuse the whole import if any row is bad"),
) -> ImportRead:
    """Load CSV exports from any CRM. Bad rows are quarantined with their reason (listed in
    the answer and under the source's quarantine) unless `strict`, which answers 422 listing
    every bad row and writes nothing. Re-importing the same files changes nothing. The
    periods the import touched are then recomputed by the job `compute_job_id`."""
    limit = settings.max_upload_bytes
    mapping_text = (await _read(mapping, 1_000_000) or b"").decode("utf-8", errors="replace")
    files: dict[str, bytes] = {}
    for name, upload in (("reps", reps), ("deals", deals), ("activities", activities)):
        content = await _read(upload, limit)
        if content is not None:
            files[name] = content
    if not files:
        raise InvalidInputError(
            "no file to import", details=[{"field": "deals", "message": "send at least one CSV"}]
        )
    # Parsing and writing are long and wait for the write lock: off the event loop.
    result, job_id = await run_in_threadpool(
        _import, session, settings, mapping_text, files, strict
    )
    request.app.state.jobs.submit(job_id)
    notice = ingest.horizon_notice(settings, result.earliest)
    return ImportRead.model_validate(result).model_copy(
        update={"compute_job_id": job_id, "notices": [notice] if notice else []}
    )


def _import(
    session: Session, settings: Settings, mapping: str, files: dict[str, bytes], strict: bool
) -> tuple[service.ImportResult, int]:
    frames = {
        name: service.read_csv(content, name=name, max_rows=settings.max_csv_rows)
        for name, content in files.items()
    }
    result = service.run_import(
        session=session, mapping=Mapping.parse_text(mapping), strict=strict, **frames
    )
    # Recompute the periods the import touched, in the background (a job like any other).
    job = jobs_service.create(session=session, kind="compute", trigger="import")
    session.commit()
    return result, job.id
