from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.deals.models import Deal
from app.reps.scope import TeamScope, rep_ids


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
    stmt = select(Deal)
    if rep_id is not None:
        stmt = stmt.where(Deal.rep_id == rep_id)
    if team_id is not None:
        # The subtree by default: the records behind the team's figures (see app.reps.scope).
        stmt = stmt.where(
            Deal.rep_id.in_(rep_ids(session=session, team_id=team_id, team_scope=team_scope))
        )
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
