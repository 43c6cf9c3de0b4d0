from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.reps.scope import TeamScope, owned_records


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
    stmt = owned_records(
        Activity,
        session=session,
        rep_id=rep_id,
        team_id=team_id,
        team_scope=team_scope,
        source_id=source_id,
        include_deleted=include_deleted,
        visible_rep_ids=visible_rep_ids,
    )
    if type is not None:
        stmt = stmt.where(Activity.type == type)
    if occurred_from is not None:
        stmt = stmt.where(Activity.occurred_at >= occurred_from)
    if occurred_before is not None:
        stmt = stmt.where(Activity.occurred_at < occurred_before)
    return stmt
