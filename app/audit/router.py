from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from app.audit import service
from app.audit.models import AuditEntry
from app.audit.schemas import AuditPage, AuditRead
from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import AdminKey, SessionDep

router = APIRouter()


@router.get("", response_model=AuditPage)
def list_audit(
    session: SessionDep,
    _: AdminKey,
    entity_type: Literal["target", "source", "alert_rule", "webhook", "api_key"] | None = None,
    entity_id: int | None = None,
    actor_key_id: int | None = None,
    since: AwareDatetime | None = Query(
        None, description="Changed at or after; with a UTC offset (2026-01-01T00:00:00Z)."
    ),
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> AuditPage:
    """Every change to targets, sources, alert rules, webhooks and API keys: who, when, what,
    before and after (secrets redacted), oldest first."""
    stmt = service.query(
        entity_type=entity_type, entity_id=entity_id, actor_key_id=actor_key_id, since=since
    )
    rows, next_cursor = paginate(session, stmt, AuditEntry.id, cursor=cursor, limit=limit)
    return AuditPage(items=[AuditRead.model_validate(r) for r in rows], next_cursor=next_cursor)
