"""Which teams a ``team_id`` filter on records covers: the team's subtree, or the team alone.

A team's figures pool every rep of the team and of the teams below it (the compute's team
membership), so the records behind them are the subtree's by default; ``direct`` lists only
the reps whose own team it is.
"""

from __future__ import annotations

from typing import Literal

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
