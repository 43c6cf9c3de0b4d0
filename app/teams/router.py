from __future__ import annotations

from fastapi import APIRouter, status

from app.core.exceptions import NotFoundError
from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import AdminKey, MetricsReaderKey, SessionDep
from app.teams import service
from app.teams.models import Team
from app.teams.schemas import TeamCreate, TeamPage, TeamRead, TeamUpdate

router = APIRouter()


@router.get("", response_model=TeamPage)
def list_teams(
    session: SessionDep,
    principal: MetricsReaderKey,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> TeamPage:
    """Teams with their manager and parent team, as a flat list (use `parent_id` for the tree)."""
    stmt = service.query(visible_ids=principal.team_ids)
    rows, next_cursor = paginate(session, stmt, Team.id, cursor=cursor, limit=limit)
    return TeamPage(items=[TeamRead.model_validate(t) for t in rows], next_cursor=next_cursor)


@router.get("/{team_id}", response_model=TeamRead)
def read_team(team_id: int, session: SessionDep, principal: MetricsReaderKey) -> TeamRead:
    """One team with its manager and parent."""
    if not principal.can_see_team(team_id):
        raise NotFoundError(f"team {team_id} not found")
    return TeamRead.model_validate(service.get(session=session, team_id=team_id))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TeamRead)
def create_team(team_in: TeamCreate, session: SessionDep, _: AdminKey) -> TeamRead:
    """Create a team; give `parent_id` to nest it and `manager_id` to name its manager."""
    return TeamRead.model_validate(service.create(session=session, team_in=team_in))


@router.patch("/{team_id}", response_model=TeamRead)
def update_team(team_id: int, team_in: TeamUpdate, session: SessionDep, _: AdminKey) -> TeamRead:
    """Rename a team, move it under another parent, or change its manager."""
    team = service.get(session=session, team_id=team_id)
    return TeamRead.model_validate(service.update(session=session, team=team, team_in=team_in))
