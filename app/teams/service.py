from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core.exceptions import ConflictError, InvalidInputError, NotFoundError
from app.teams import tree
from app.teams.models import REPS, Team
from app.teams.schemas import TeamCreate, TeamUpdate

__all__ = [
    "Team",
    "check_exist",
    "create",
    "get",
    "get_or_create",
    "query",
    "update",
]


def get(*, session: Session, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFoundError(f"team {team_id} not found")
    return team


def query(*, visible_ids: frozenset[int] | None = None) -> Select[Team]:
    stmt = select(Team).order_by(Team.id)
    if visible_ids is not None:
        stmt = stmt.where(Team.id.in_(visible_ids))
    return stmt


def check_exist(*, session: Session, team_ids: Iterable[int], field: str = "team_ids") -> None:
    """422 naming ``field`` when any of the ids is no team (rule and webhook scopes)."""
    wanted = set(team_ids)
    known = set(session.scalars(select(Team.id).where(Team.id.in_(wanted))))
    missing = sorted(wanted - known)
    if missing:
        raise InvalidInputError(
            f"unknown teams: {missing}",
            details=[{"field": field, "message": f"no team {t}"} for t in missing],
        )


def get_or_create(*, session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
    return team


def create(*, session: Session, team_in: TeamCreate) -> Team:
    if session.scalar(select(Team.id).where(Team.name == team_in.name)) is not None:
        raise ConflictError(f"team {team_in.name!r} exists")
    team = Team()
    _apply(session=session, team=team, data=team_in.model_dump())
    session.add(team)
    session.flush()
    return team


def update(*, session: Session, team: Team, team_in: TeamUpdate) -> Team:
    data = team_in.model_dump(exclude_unset=True)
    if "name" in data:
        if data["name"] is None:
            raise InvalidInputError(
                "a team needs a name", details=[{"field": "name", "message": "may not be null"}]
            )
        same = select(Team.id).where(Team.name == data["name"], Team.id != team.id)
        if session.scalar(same) is not None:
            raise ConflictError(f"team {data['name']!r} exists")
    _apply(session=session, team=team, data=data)
    session.flush()
    session.expire(team, ["manager_name"])
    return team


def _apply(*, session: Session, team: Team, data: dict[str, object]) -> None:
    parent_id = data.get("parent_id")
    if isinstance(parent_id, int):
        get(session=session, team_id=parent_id)
        if team.id is not None and team.id in tree.ancestors(session=session, team_id=parent_id):
            raise InvalidInputError(
                "team cycle", details=[{"field": "parent_id", "message": "would make a cycle"}]
            )
    manager_id = data.get("manager_id")
    if isinstance(manager_id, int):
        _check_rep(session=session, rep_id=manager_id)
    for field, value in data.items():
        setattr(team, field, value)


def _check_rep(*, session: Session, rep_id: int) -> None:
    # The same 404 as GET /reps/{id}, without importing app.reps (see app.teams.models.REPS).
    if session.scalar(select(REPS.c.id).where(REPS.c.id == rep_id)) is None:
        raise NotFoundError(f"rep {rep_id} not found")
