"""The compute job: load frames, run ``analytics/``, store a snapshot in one transaction.

Scope. A full compute covers every month, quarter and fiscal year from ``history_months``
before ``as_of`` to the end of the current fiscal year. An incremental compute covers the
periods from the earliest day marked dirty by a sync or import (or, at least, from the
period containing the previous snapshot's ``as_of``, since time passing moves pacing and
closes periods) to the same end; figures outside that scope cannot have changed.

Within its scope an incremental compute starts from the state the last compute left
(``ComputeState``: every rep's monthly figures, the won deals' sales cycles and the open
deals due) rather than from the records. Each deal changed since (``DealChange``) takes out
what the state counted of it, its before image, and puts in what it is now; activities are
read again for the (activity, rep, month) cells a sync or import marked (``DirtyDay``, a day
either side), and every record for the months of the data window the state does not hold.
Quarter and year figures are rolled up from the months as in a full compute; medians (the
sales cycle), which do not roll up, come from the won deals of the state. Each snapshot
records the months its state is exact for, the span its open deals cover and the settings it
was computed with (``details``): when those settings change, the next incremental compute
reads every record of its data window.
"""

from __future__ import annotations

import gc
import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.performance import projections, results, store
from app.performance.inputs import from_records, load, metrics_from
from app.performance.marks import CHANGE_TABLES
from app.performance.models import Snapshot
from app.performance.plan import KINDS, Scope, basis, gap_basis, scope_of
from app.performance.state import from_stored
from app.performance.timing import timed


@contextmanager
def _collection_deferred() -> Iterator[None]:
    """Python's cycle collector paused, then resumed as it was.

    A compute allocates hundreds of thousands of short-lived containers (fetched tuples, row
    dicts, driver values), which set off a cycle collection every 700 allocations, and the
    older generations' collections traverse every object the process holds: 0.05 to 0.15 s of
    an incremental compute. What it allocates is freed by reference counting (a full compute's
    peak memory is the same either way: bench/analytics.py), so collection waits for the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run(
    *,
    session: Session,
    settings: Settings,
    as_of: date | None = None,
    full: bool = False,
    trigger: str = "manual",
) -> Snapshot:
    """Compute and store a new snapshot; everything happens in the caller's transaction."""
    with _collection_deferred():
        return _run(session=session, settings=settings, as_of=as_of, full=full, trigger=trigger)


def _run(
    *, session: Session, settings: Settings, as_of: date | None, full: bool, trigger: str
) -> Snapshot:
    """The stages of a compute, each timed under its key of ``details["timings_s"]``: load
    (with load.* its parts on the stored path), metrics, gaps, projections (their backtested
    error), drivers, write (with write.*)."""
    started = clock.perf_counter()
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        as_of = as_of or settings.today()
        if session.get_bind().dialect.name == "postgresql":
            # Changes a sync commits while this runs wait for its end, so the marks and changes
            # this compute clears are exactly those it read (SQLite: its one writer at a time).
            # The one lock order (app.performance.marks.CHANGE_TABLES).
            session.execute(text(f"LOCK TABLE {CHANGE_TABLES} IN EXCLUSIVE MODE"))
        scope = scope_of(session, settings, as_of=as_of, full=full)
        snapshot = _building(session, scope, as_of=as_of, full=full, trigger=trigger)
        records = load(session, scope) if scope.stored is None else None
        inputs = from_stored(session, scope, settings, as_of) if records is None else None

    with timed(timings, "metrics"):
        if inputs is None:  # the one pass over the records is the metrics stage's, as before
            assert records is not None
            inputs = from_records(records, settings, as_of)
            del records
        timings.update({f"load.{k}": v for k, v in inputs.timings.items()})
        metrics = metrics_from(inputs.rep_month, inputs.cycles, inputs.tenure, settings)

    with timed(timings, "gaps"):
        in_scope = {kind: {p.label for p in scope.periods[kind]} for kind in KINDS}
        actuals = results.actuals(metrics, in_scope)
        gap_rows = results.gap_rows(session, settings, scope, inputs, metrics, actuals, as_of)

    with timed(timings, "projections"):
        gap_rows = projections.with_projections(
            gap_rows, projections.errors(inputs, settings, as_of), as_of
        )

    with timed(timings, "drivers"):
        coaching = results.coaching_table(
            metrics, inputs, in_scope, settings.calendar, results.rep_sources(session)
        )

    with timed(timings, "write"):
        written, stored_months, keep = store.write(
            session,
            settings=settings,
            snapshot=snapshot,
            scope=scope,
            inputs=inputs,
            gap_rows=gap_rows,
            actuals=actuals,
            coaching=coaching,
            timings=timings,
        )

    snapshot.status = "complete"
    snapshot.rows_written = written
    snapshot.duration_ms = int((clock.perf_counter() - started) * 1000)
    snapshot.details = {
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "deals": inputs.deals,
        "activities": inputs.activities,
        "dirty_days": len(scope.dirty_days),
        "stored_months": stored_months,
        "due_range": [as_of.isoformat(), scope.data_end.isoformat()],
        "basis": basis(settings),
        "gap_basis": gap_basis(settings),
        "purged_to": keep,
    }
    session.flush()
    return snapshot


def _building(session: Session, scope: Scope, *, as_of: date, full: bool, trigger: str) -> Snapshot:
    """The new snapshot, flushed (its id is the version its rows are written under)."""
    snapshot = Snapshot(
        status="building",
        kind="full" if full else "incremental",
        trigger=trigger,
        as_of=as_of,
        periods=scope.labels,
    )
    session.add(snapshot)
    session.flush()
    return snapshot
