"""Which teams a ``team_id`` filter on records covers: the team's subtree, or the team alone.

A team's figures pool every rep of the team and of the teams below it (the compute's team
membership), so the records behind them are the subtree's by default; ``direct`` lists only
the reps whose own team it is.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.reps.models import Rep
from app.teams import tree

TeamScope = Literal["subtree", "direct"]
TEAM_SCOPE_DESCRIPTION = (
    "With `team_id`: `subtree` (default) covers the team and every team below it, as the "
    "team's figures do; `direct` only the reps whose own team it is."
)


def team_ids(*, session: Session, team_id: int, team_scope: TeamScope) -> set[int]:
    """``team_id`` and, for ``subtree``, every team below it."""
    if team_scope == "direct":
        return {team_id}
    return tree.subtree(session=session, roots=[team_id])


def rep_ids(*, session: Session, team_id: int, team_scope: TeamScope) -> Select[int]:
    """The reps (any role) of the teams the scope covers, as a subquery for ``IN``."""
    teams = team_ids(session=session, team_id=team_id, team_scope=team_scope)
    return select(Rep.id).where(Rep.team_id.in_(teams))


R = TypeVar("R")


def owned_records(
    model: type[R],
    *,
    session: Session,
    rep_id: int | None,
    team_id: int | None,
    team_scope: TeamScope,
    source_id: int | None,
    include_deleted: bool,
    visible_rep_ids: frozenset[int] | None,
) -> Select[R]:
    """``model``'s records (deals, activities: each with a rep, a source and a soft delete)
    filtered by owner, team scope, source and deletion, within what the caller may read
    (``visible_rep_ids``: a manager's tree; None for every rep)."""
    m: Any = model
    stmt = select(model)
    if rep_id is not None:
        stmt = stmt.where(m.rep_id == rep_id)
    if team_id is not None:
        # The subtree by default: the records behind the team's figures.
        stmt = stmt.where(
            m.rep_id.in_(rep_ids(session=session, team_id=team_id, team_scope=team_scope))
        )
    if source_id is not None:
        stmt = stmt.where(m.source_id == source_id)
    if not include_deleted:
        stmt = stmt.where(m.is_deleted.is_(False))
    if visible_rep_ids is not None:
        stmt = stmt.where(m.rep_id.in_(visible_rep_ids))
    return stmt
