from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from app.activities import service
from app.activities.models import Activity
from app.activities.schemas import ActivityPage, ActivityRead, ActivityType
from app.core.pagination import CursorParam, LimitParam, paginate
from app.core.periods import parse, utc_bounds
from app.http.deps import RecordReaderKey, SessionDep, SettingsDep
from app.http.params import check_range
from app.reps.scope import TEAM_SCOPE_DESCRIPTION, TeamScope

router = APIRouter()


@router.get("", response_model=ActivityPage)
def list_activities(
    session: SessionDep,
    settings: SettingsDep,
    principal: RecordReaderKey,
    rep_id: int | None = None,
    team_id: int | None = None,
    team_scope: TeamScope = Query("subtree", description=TEAM_SCOPE_DESCRIPTION),
    source_id: int | None = None,
    type: ActivityType | None = None,
    occurred_in: str | None = Query(None, description="Period label, e.g. 2026-W48."),
    occurred_from: AwareDatetime | None = Query(None, description="Occurred at or after."),
    occurred_before: AwareDatetime | None = Query(
        None, description="Occurred before (after occurred_from)."
    ),
    include_deleted: bool = False,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> ActivityPage:
    """Calls, emails, meetings and tasks behind the activity figures."""
    check_range(
        ("occurred_from", occurred_from), ("occurred_before", occurred_before), half_open=True
    )
    if occurred_in:
        occurred_from, occurred_before = utc_bounds(
            parse(occurred_in, settings.calendar, field="occurred_in")
        )
    stmt = service.query(
        session=session,
        rep_id=rep_id,
        team_id=team_id,
        team_scope=team_scope,
        source_id=source_id,
        type=type,
        occurred_from=occurred_from,
        occurred_before=occurred_before,
        include_deleted=include_deleted,
        visible_rep_ids=principal.rep_ids,
    )
    rows, next_cursor = paginate(session, stmt, Activity.id, cursor=cursor, limit=limit)
    return ActivityPage(
        items=[ActivityRead.model_validate(a) for a in rows], next_cursor=next_cursor
    )
