"""Effective-dated team membership: a move has a date, and the periods before it keep the
team the rep was on then.

Every way a rep's ``team_id`` is written (the API, an import, a CRM sync, the demo) keeps
the rep's spans (:class:`~app.reps.models.TeamMembership`) in step, by an ``after_flush``
listener: a new rep opens their first span; a changed ``team_id`` closes the span covering
the effective date and opens the next. The effective date is the one given to :func:`move`
(the API's ``effective_date``), otherwise the day of the write in UTC (a CRM that changes an
owner's team says no more than that).
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from sqlalchemy import Table, delete, event, insert, inspect, or_, select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.exceptions import InvalidInputError
from app.reps.models import Rep, TeamMembership

_SPANS = cast(Table, TeamMembership.__table__)
# session.info key: rep id -> the effective date of the move this flush writes.
_MOVES = "qg_team_moves"


def move(*, session: Session, rep: Rep, team_id: int | None, effective: date, today: date) -> None:
    """Put ``rep`` on ``team_id`` (None: on no team) from ``effective`` on.

    A date after ``today`` is refused: a move is recorded when it happens, so that the
    rep's current team is always the one on their record."""
    if effective > today:
        raise InvalidInputError(
            "a team move cannot take effect in the future",
            details=[{"field": "effective_date", "message": f"after today ({today})"}],
        )
    session.info.setdefault(_MOVES, {})[rep.id] = effective
    rep.team_id = team_id


def effective_date(session: Session, rep: Rep) -> date | None:
    """The effective date of the team move of ``rep`` being written, if :func:`move` set one."""
    moves: dict[int, date] = session.info.get(_MOVES, {})
    return moves.get(rep.id)


def on_a_team_before(session: Session, rep_id: int, day: date) -> bool:
    """Whether a span of the rep starts before ``day`` (or is open at the start): a move on
    ``day`` then leaves the periods before it as they were."""
    found = session.scalar(
        select(TeamMembership.id)
        .where(
            TeamMembership.rep_id == rep_id,
            or_(TeamMembership.valid_from.is_(None), TeamMembership.valid_from < day),
        )
        .limit(1)
    )
    return found is not None


def _cut(session: Session, rep_id: int, team_id: int | None, effective: date) -> None:
    """Spans of ``rep_id`` end at ``effective``; the new one (if any) starts there."""
    spans = _SPANS
    session.execute(delete(spans).where(spans.c.rep_id == rep_id, spans.c.valid_from >= effective))
    session.execute(
        update(spans)
        .where(
            spans.c.rep_id == rep_id,
            or_(spans.c.valid_to.is_(None), spans.c.valid_to > effective),
        )
        .values(valid_to=effective)
    )
    if team_id is not None:
        session.execute(
            insert(spans).values(
                rep_id=rep_id, team_id=team_id, valid_from=effective, created_at=utcnow()
            )
        )


@event.listens_for(Session, "after_flush")
def _keep_spans(session: Session, _context: Any) -> None:
    moves: dict[int, date] = session.info.pop(_MOVES, {})
    for obj in session.new:
        if isinstance(obj, Rep) and obj.team_id is not None:
            _first(session, obj)
    for obj in session.dirty:
        if not isinstance(obj, Rep) or not inspect(obj).attrs.team_id.history.has_changes():
            continue
        if obj.id not in moves and not _has_spans(session, obj.id):
            _first(session, obj)  # a rep's first team, set after the rep was created
        else:
            _cut(session, obj.id, obj.team_id, moves.get(obj.id) or utcnow().date())


def _has_spans(session: Session, rep_id: int) -> bool:
    found = session.scalar(
        select(TeamMembership.id).where(TeamMembership.rep_id == rep_id).limit(1)
    )
    return found is not None


def _first(session: Session, rep: Rep) -> None:
    """The rep's first span: on their team since their start date."""
    if rep.team_id is not None:
        session.execute(
            insert(_SPANS).values(
                rep_id=rep.id, team_id=rep.team_id, valid_from=rep.start_date, created_at=utcnow()
            )
        )
