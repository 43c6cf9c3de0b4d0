from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from app.core.exceptions import NotFoundError
from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import AdminKey, MetricsReaderKey, SessionDep, SettingsDep
from app.reps import service
from app.reps.models import Rep
from app.reps.schemas import RepPage, RepRead, RepUpdate

router = APIRouter()


@router.get("", response_model=RepPage)
def list_reps(
    session: SessionDep,
    principal: MetricsReaderKey,
    team_id: int | None = None,
    manager_id: int | None = None,
    role: Literal["rep", "manager"] | None = None,
    is_active: bool | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> RepPage:
    """Reps with their team and manager. A manager key sees only their own team tree."""
    stmt = service.query(
        team_id=team_id,
        manager_id=manager_id,
        role=role,
        is_active=is_active,
        visible_ids=principal.rep_ids,
    )
    rows, next_cursor = paginate(session, stmt, Rep.id, cursor=cursor, limit=limit)
    return RepPage(items=[RepRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{rep_id}", response_model=RepRead)
def read_rep(rep_id: int, session: SessionDep, principal: MetricsReaderKey) -> RepRead:
    """One person: team, manager, start date and CRM identities (a manager's key sees their own
    team tree only)."""
    if not principal.can_see_rep(rep_id):
        raise NotFoundError(f"rep {rep_id} not found")
    return RepRead.model_validate(service.get(session=session, rep_id=rep_id))


@router.patch("/{rep_id}", response_model=RepRead)
def update_rep(
    rep_id: int, rep_in: RepUpdate, session: SessionDep, settings: SettingsDep, _: AdminKey
) -> RepRead:
    """Set a rep's team (from ``effective_date``, today by default: the periods before it
    keep the old team), manager, start date (for ramp and proration) or active flag."""
    rep = service.get(session=session, rep_id=rep_id)
    updated = service.update(session=session, rep=rep, rep_in=rep_in, today=settings.today())
    return RepRead.model_validate(updated)
