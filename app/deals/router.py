from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from app.core.pagination import CursorParam, LimitParam, paginate
from app.core.periods import parse, utc_bounds
from app.deals import service
from app.deals.models import Deal
from app.deals.schemas import DealPage, DealRead, DealStatus
from app.http.deps import RecordReaderKey, SessionDep, SettingsDep
from app.http.params import check_range
from app.reps.scope import TEAM_SCOPE_DESCRIPTION, TeamScope

router = APIRouter()


@router.get("", response_model=DealPage)
def list_deals(
    session: SessionDep,
    settings: SettingsDep,
    principal: RecordReaderKey,
    rep_id: int | None = None,
    team_id: int | None = None,
    team_scope: TeamScope = Query("subtree", description=TEAM_SCOPE_DESCRIPTION),
    source_id: int | None = None,
    status: DealStatus | None = None,
    closed_in: str | None = Query(None, description="Period label: close date within it."),
    created_in: str | None = Query(None, description="Period label: created within it."),
    close_from: date | None = Query(None, description="Close date on or after."),
    close_to: date | None = Query(
        None, description="Close date on or before (not before close_from)."
    ),
    created_from: AwareDatetime | None = Query(None, description="Created at or after."),
    created_before: AwareDatetime | None = Query(
        None, description="Created before (after created_from)."
    ),
    include_deleted: bool = False,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> DealPage:
    """The deals behind any figure: e.g. `?rep_id=5&status=won&closed_in=2026-Q4` lists the
    records summed into that rep's `won_revenue` for 2026-Q4."""
    check_range(("close_from", close_from), ("close_to", close_to))
    check_range(("created_from", created_from), ("created_before", created_before), half_open=True)
    if closed_in:
        p = parse(closed_in, settings.calendar, field="closed_in")
        close_from, close_to = p.start, p.end
    if created_in:
        created_from, created_before = utc_bounds(
            parse(created_in, settings.calendar, field="created_in")
        )
    stmt = service.query(
        session=session,
        rep_id=rep_id,
        team_id=team_id,
        team_scope=team_scope,
        source_id=source_id,
        status=status,
        close_from=close_from,
        close_to=close_to,
        created_from=created_from,
        created_before=created_before,
        include_deleted=include_deleted,
        visible_rep_ids=principal.rep_ids,
    )
    rows, next_cursor = paginate(session, stmt, Deal.id, cursor=cursor, limit=limit)
    return DealPage(items=[DealRead.model_validate(d) for d in rows], next_cursor=next_cursor)
