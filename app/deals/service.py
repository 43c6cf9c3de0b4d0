from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.deals.models import Deal
from app.reps.scope import TeamScope, owned_records


def query(
    *,
    session: Session,
    rep_id: int | None = None,
    team_id: int | None = None,
    team_scope: TeamScope = "subtree",
    source_id: int | None = None,
    status: str | None = None,
    close_from: date | None = None,
    close_to: date | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
    include_deleted: bool = False,
    visible_rep_ids: frozenset[int] | None = None,
) -> Select[Deal]:
    stmt = owned_records(
        Deal,
        session=session,
        rep_id=rep_id,
        team_id=team_id,
        team_scope=team_scope,
        source_id=source_id,
        include_deleted=include_deleted,
        visible_rep_ids=visible_rep_ids,
    )
    if status is not None:
        stmt = stmt.where(Deal.status == status)
    if close_from is not None:
        stmt = stmt.where(Deal.close_date >= close_from)
    if close_to is not None:
        stmt = stmt.where(Deal.close_date <= close_to)
    if created_from is not None:
        stmt = stmt.where(Deal.created_at >= created_from)
    if created_before is not None:
        stmt = stmt.where(Deal.created_at < created_before)
    return stmt
