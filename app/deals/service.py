from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Select, select

from app.deals.models import Deal
from app.reps.models import Rep


def query(
    *,
    rep_id: int | None = None,
    team_id: int | None = None,
    source_id: int | None = None,
    status: str | None = None,
    close_from: date | None = None,
    close_to: date | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
    include_deleted: bool = False,
    visible_rep_ids: frozenset[int] | None = None,
) -> Select[Deal]:
    stmt = select(Deal)
    if rep_id is not None:
        stmt = stmt.where(Deal.rep_id == rep_id)
    if team_id is not None:
        stmt = stmt.where(Deal.rep_id.in_(select(Rep.id).where(Rep.team_id == team_id)))
    if source_id is not None:
        stmt = stmt.where(Deal.source_id == source_id)
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
    if not include_deleted:
        stmt = stmt.where(Deal.is_deleted.is_(False))
    if visible_rep_ids is not None:
        stmt = stmt.where(Deal.rep_id.in_(visible_rep_ids))
    return stmt
