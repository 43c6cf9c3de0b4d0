from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.reps.scope import TeamScope, rep_ids


def query(
    *,
    session: Session,
    rep_id: int | None = None,
    team_id: int | None = None,
    team_scope: TeamScope = "subtree",
    source_id: int | None = None,
    type: str | None = None,
    occurred_from: datetime | None = None,
    occurred_before: datetime | None = None,
    include_deleted: bool = False,
    visible_rep_ids: frozenset[int] | None = None,
) -> Select[Activity]:
    stmt = select(Activity)
    if rep_id is not None:
        stmt = stmt.where(Activity.rep_id == rep_id)
    if team_id is not None:
        # The subtree by default: the records behind the team's figures (see app.reps.scope).
        stmt = stmt.where(
            Activity.rep_id.in_(rep_ids(session=session, team_id=team_id, team_scope=team_scope))
        )
    if source_id is not None:
        stmt = stmt.where(Activity.source_id == source_id)
    if type is not None:
        stmt = stmt.where(Activity.type == type)
    if occurred_from is not None:
        stmt = stmt.where(Activity.occurred_at >= occurred_from)
    if occurred_before is not None:
        stmt = stmt.where(Activity.occurred_at < occurred_before)
    if not include_deleted:
        stmt = stmt.where(Activity.is_deleted.is_(False))
    if visible_rep_ids is not None:
        stmt = stmt.where(Activity.rep_id.in_(visible_rep_ids))
    return stmt
