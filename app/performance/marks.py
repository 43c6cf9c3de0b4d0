"""Dirty marks: what changed since the last compute, for the next incremental one.

Records (deals, activities) are marked by :mod:`app.pipeline.ingest` as they are written, by UTC day
and rep (``deal`` / ``activity`` marks: their monthly figures are read or shifted again).
Everything else a figure depends on is marked here, by a ``before_flush`` listener on every
ORM session, so that each way of writing it (API, CSV upload, import, CRM sync, demo) is
covered in one place (``org`` marks: the periods from that day on are computed again from the
stored monthly figures, nothing is re-read):

* a target created, changed or deleted: the start of its period (old and new);
* a rep's start date: every period (proration and ramp move from the earlier date, and the
  periods before it name the start in their target note); a rep's role, or a rep deleted:
  every period (drivers compare reps with their team's);
* a rep's team: the day the move takes effect (see :mod:`app.reps.memberships`), or every
  period when the move has no date or replaces the rep's first span;
* a team moved in the tree or deleted: every period (team figures pool the whole tree).

:data:`EVERY_PERIOD` is a day before any period: the compute then covers its whole scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.orm import Session

from app.performance.models import ANY_REP, DirtyDay
from app.reps import memberships

EVERY_PERIOD = date(1900, 1, 1)
# The lock order, everywhere: dirty_days, then deal_changes. A compute locks both at its start
# (``app.performance.compute``: EXCLUSIVE, so the marks it clears are those it read); a write
# that records deal changes takes both first too (:func:`lock_for_changes`). Taken the other
# way round, a sync page holding deal_changes and waiting for dirty_days, and a compute
# holding dirty_days and waiting for deal_changes, deadlock.
CHANGE_TABLES = "dirty_days, deal_changes"


def lock_for_changes(session: Session) -> None:
    """Before writing deal changes (and then marks): both tables in the one lock order, in
    ROW EXCLUSIVE mode, which writers share and a compute's EXCLUSIVE waits for (PostgreSQL;
    SQLite has one writer at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {CHANGE_TABLES} IN ROW EXCLUSIVE MODE"))


def mark_dirty(session: Session, cells: set[tuple[date, int]], *, kind: str) -> None:
    """Remember the (day, rep) cells of ``kind`` (``deal``, ``activity`` or ``org``) whose
    figures changed, for the next incremental recompute; ``rep`` ANY_REP stands for every
    rep."""
    if not cells:
        return
    days = {d for d, _ in cells}
    present = {
        (d, r)
        for d, r in session.execute(
            select(DirtyDay.day, DirtyDay.rep_id).where(
                DirtyDay.kind == kind, DirtyDay.day.in_(days)
            )
        )
    }
    missing = [{"day": d, "kind": kind, "rep_id": r} for d, r in sorted(cells - present)]
    if missing:
        session.execute(insert(DirtyDay), missing)


def _history(obj: Any, name: str) -> tuple[list[Any], list[Any]]:
    """(values before, values now) of one attribute in this flush: both lists hold the
    current value when it did not change."""
    h = inspect(obj).attrs[name].history
    now = [*h.added, *h.unchanged]
    return [*h.deleted, *h.unchanged] or now, now


def _changed(obj: Any, names: Iterable[str]) -> bool:
    return any(inspect(obj).attrs[n].history.has_changes() for n in names)


def _target_days(session: Session, obj: Any, state: str) -> set[date]:
    if state != "dirty":
        start = obj.period_start
        return {start if isinstance(start, date) else EVERY_PERIOD}
    if not _changed(obj, ("value", "period", "period_start", "metric", "rep_id", "team_id")):
        return set()
    before, now = _history(obj, "period_start")
    return {d if isinstance(d, date) else EVERY_PERIOD for d in (*before, *now)}


def _rep_days(session: Session, obj: Any, state: str) -> set[date]:
    if state == "new":  # no figures yet: its records and targets mark their own periods
        return set()
    if state == "deleted" or _changed(obj, ("role",)):
        return {EVERY_PERIOD}
    days: set[date] = set()
    if _changed(obj, ("start_date",)):
        # Every period: those before the start carry it in their target note ("starts
        # <date>, after the period"), not only the ones from the earlier date on.
        days.add(EVERY_PERIOD)
    if _changed(obj, ("team_id",)):
        # From the move's date when the spans before it stay as they were; otherwise (no
        # date given, or the rep's first span replaced, which reaches back) every period.
        effective = memberships.effective_date(session, obj)
        kept = effective is not None and memberships.on_a_team_before(session, obj.id, effective)
        days.add(effective if effective is not None and kept else EVERY_PERIOD)
    return days


def _team_days(session: Session, obj: Any, state: str) -> set[date]:
    if state == "new":  # no members yet
        return set()
    if state == "deleted" or _changed(obj, ("parent_id",)):
        return {EVERY_PERIOD}
    return set()


_MARKERS = {"targets": _target_days, "reps": _rep_days, "teams": _team_days}


@event.listens_for(Session, "before_flush")
def _mark_org_changes(session: Session, _context: Any, _instances: Any) -> None:
    days: set[date] = set()
    for state, objects in (
        ("new", session.new),
        ("dirty", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in objects:
            marker = _MARKERS.get(getattr(obj, "__tablename__", ""))
            if marker is not None:
                days |= marker(session, obj, state)
    mark_dirty(session, {(d, ANY_REP) for d in days}, kind="org")
