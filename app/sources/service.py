from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import secrets
from app.config import Settings
from app.exceptions import ConflictError, InvalidInputError, NotFoundError
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from app.sources.schemas import SourceCreate, SourceRead, SourceUpdate, SyncRunRead


def get(*, session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFoundError(f"source {source_id} not found")
    return source


def create(*, session: Session, settings: Settings, source_in: SourceCreate) -> Source:
    if session.scalar(select(Source.id).where(Source.name == source_in.name)) is not None:
        raise ConflictError(
            f"a source named {source_in.name!r} exists",
            details=[{"field": "name", "message": "already used"}],
        )
    if source_in.kind == "salesforce" and not (
        source_in.base_url or source_in.credentials.get("instance_url")
    ):
        raise InvalidInputError(
            "a Salesforce source needs its instance URL",
            details=[{"field": "base_url", "message": "set base_url or credentials.instance_url"}],
        )
    source = Source(
        kind=source_in.kind,
        name=source_in.name,
        base_url=source_in.base_url,
        credentials_encrypted=secrets.encrypt(settings, source_in.credentials),
        schedule=source_in.schedule.model_dump(exclude_none=True),
        config=source_in.config,
        is_enabled=source_in.is_enabled,
    )
    session.add(source)
    session.flush()
    return source


def update(
    *, session: Session, settings: Settings, source: Source, source_in: SourceUpdate
) -> Source:
    data = source_in.model_dump(exclude_unset=True)
    if "credentials" in data and data["credentials"] is not None:
        source.credentials_encrypted = secrets.encrypt(settings, data.pop("credentials"))
    if "schedule" in data and data["schedule"] is not None:
        data["schedule"] = {k: v for k, v in data["schedule"].items() if v is not None}
    for field, value in data.items():
        if value is not None:
            setattr(source, field, value)
    session.flush()
    return source


def query() -> Select[Source]:
    return select(Source).where(Source.kind != "csv").order_by(Source.id)


def to_read(session: Session, source: Source) -> SourceRead:
    """A source with its sync health; credentials are never part of it."""
    last = session.scalar(
        select(SyncRun).where(SyncRun.source_id == source.id).order_by(SyncRun.id.desc())
    )
    cursors = {
        c.stream: c.value
        for c in session.scalars(select(SyncCursor).where(SyncCursor.source_id == source.id))
    }
    return SourceRead(
        id=source.id,
        kind=source.kind,
        name=source.name,
        base_url=source.base_url,
        schedule=source.schedule,
        config=source.config,
        is_enabled=source.is_enabled,
        has_credentials=bool(source.credentials_encrypted),
        last_success_at=source.last_success_at,
        last_error=source.last_error,
        consecutive_failures=source.consecutive_failures,
        last_run=SyncRunRead.model_validate(last) if last else None,
        cursors=cursors,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )


def quarantine_query(*, source_id: int, object_type: str | None) -> Select[QuarantinedRecord]:
    stmt = select(QuarantinedRecord).where(QuarantinedRecord.source_id == source_id)
    if object_type:
        stmt = stmt.where(QuarantinedRecord.object_type == object_type)
    return stmt


def runs_query(*, source_id: int) -> Select[SyncRun]:
    return select(SyncRun).where(SyncRun.source_id == source_id)
