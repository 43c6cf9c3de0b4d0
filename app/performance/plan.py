"""What a compute covers: its periods, the data window they read, and whether the stored
monthly state (``ComputeState``) can stand in for the records.

Full: every month, quarter and fiscal year from ``history_months`` before ``as_of`` to the end
of the current fiscal year, and every older period with a target. Incremental: those of them
from the earliest day marked dirty by a sync or import (or, at least, from the period
containing the previous snapshot's ``as_of``, since time passing moves pacing and closes
periods); figures outside that scope cannot have changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.periods import (
    FiscalCalendar,
    Period,
    period_index,
    period_of,
    periods_between,
    shift,
)
from analytics.targets import rollup_parts
from app.core.config import Settings
from app.performance.marks import EVERY_PERIOD
from app.performance.models import ComputeState, DirtyDay, Snapshot
from app.targets.models import Target

KINDS = ("month", "quarter", "year")
# Drivers pool a year and compare with the rep's own trailing periods before it.
DRIVER_LOOKBACK_MONTHS = 15
WIN_RATE_MONTHS = 12


@dataclass
class Scope:
    periods: dict[str, list[Period]]
    data_start: date
    data_end: date
    dirty_days: list[date] = field(default_factory=list)
    # (day, "deal" | "activity", rep id or ANY_REP), as marked by app.pipeline.ingest.
    dirty: list[tuple[date, str, int]] = field(default_factory=list)
    # Month indices [first, last] the stored state is exact for (None: read the records).
    stored: tuple[int, int] | None = None
    # The first month the figures in scope depend on (drivers' lookback, win rates).
    need_start: date | None = None
    horizon: int = 0
    previous: dict[str, Any] = field(default_factory=dict)  # the last snapshot's details
    cal: FiscalCalendar = field(default_factory=FiscalCalendar)

    @property
    def labels(self) -> list[str]:
        return [p.label for ps in self.periods.values() for p in ps]

    @property
    def target_labels(self) -> list[str]:
        """The periods whose targets the compute reads: its own, and the months and quarters
        the targets of its quarters and years without one are derived from."""
        return rollup_parts(self.labels, cal=self.cal)


# The frames of the stored state, one ComputeState row each (see app.performance.state).
STATE = ("rep_month", "won", "due", "rep_mid")


def basis(settings: Settings) -> dict[str, Any]:
    """The settings stored monthly figures depend on: other ones make them stale."""
    return {
        "calendar": repr(settings.calendar),
        "timezone": settings.timezone,
        "rates": {str(k).upper(): float(v) for k, v in sorted(settings.currency_rates.items())},
    }


def month_index(d: date, cal: FiscalCalendar) -> int:
    return int(period_index(pd.Series([pd.Timestamp(d)]), "month", cal)[0])


def gap_basis(settings: Settings) -> dict[str, Any]:
    """The settings the figures of a period depend on beyond its monthly figures: when they
    change, every period in scope is computed again (from the stored monthly figures)."""
    return {
        "pacing": settings.pacing,
        "holidays": sorted(str(d) for d in settings.holidays),
        "on_track_min": float(settings.status_on_track_min),
        "ramp": [float(r) for r in settings.ramp_schedule],
        "history_months": int(settings.history_months),
    }


def _older_spans(session: Session, before: date, marks: list[date]) -> list[tuple[date, date]]:
    """Spans before the history horizon that are computed all the same: those of targets
    (a period with a target is always computed) and the ``marks`` there."""
    spans = {
        (s, e)
        for s, e in session.execute(
            select(Target.period_start, Target.period_end)
            .where(Target.period_start < before)
            .distinct()
        )
    }
    return sorted(spans | {(d, d) for d in marks if d < before})


def _periods(
    start: date, end: date, older: list[tuple[date, date]], kind: str, cal: FiscalCalendar
) -> list[Period]:
    """The periods of ``kind`` overlapping ``[start, end]`` or one of the ``older`` spans."""
    found = {p.label: p for s, e in older for p in periods_between(s, e, kind, cal)}
    found.update({p.label: p for p in periods_between(start, end, kind, cal)})
    return sorted(found.values(), key=lambda p: p.start)


def scope_of(session: Session, settings: Settings, *, as_of: date, full: bool) -> Scope:
    """What a compute covers. Full: every period from the history horizon to the end of the
    fiscal year, and every older period with a target. Incremental: those of them from the
    earliest day marked dirty (records a day earlier: timestamps are marked by UTC day but
    counted by local day), or from the last compute's as_of (time passing moves pacing and
    closes periods); from the horizon when the figures' settings changed."""
    cal = settings.calendar
    end = period_of(as_of, "year", cal).end
    horizon = period_of(settings.history_start(as_of), "month", cal)
    dirty = sorted(
        {
            (d, k, r)
            for d, k, r in session.execute(select(DirtyDay.day, DirtyDay.kind, DirtyDay.rep_id))
        }
    )
    days = sorted({d for d, _, _ in dirty})
    last = session.scalar(
        select(Snapshot).where(Snapshot.status == "complete").order_by(Snapshot.id.desc())
    )
    reach = EVERY_PERIOD
    stored: tuple[int, int] | None = None
    if not full and last is not None:
        details = last.details or {}
        candidates = [d - timedelta(days=1) if k != "org" else d for d, k, _ in dirty]
        candidates.append(min(last.as_of, as_of))
        if details.get("gap_basis") != gap_basis(settings):
            candidates.append(EVERY_PERIOD)
        reach = min(candidates)
        months = details.get("stored_months")
        states = dict(session.execute(select(ComputeState.name, ComputeState.snapshot_id)).all())
        current = all(states.get(name) == last.id for name in STATE)
        if months and current and details.get("basis") == basis(settings):
            stored = (int(months[0]), int(months[1]))
    # Org marks there: a target deleted or moved away, whose stored rows must go.
    gone = [d for d, k, _ in dirty if k == "org" and d != EVERY_PERIOD]
    older = [(s, e) for s, e in _older_spans(session, horizon.start, gone) if e >= reach]
    start = max(horizon.start, reach)
    periods = {kind: _periods(start, end, older, kind, cal) for kind in KINDS}
    first = min(p.start for ps in periods.values() for p in ps)
    win_rate_start = shift(period_of(as_of, "month", cal), -WIN_RATE_MONTHS, cal).start
    data_start = min(
        shift(period_of(first, "month", cal), -DRIVER_LOOKBACK_MONTHS, cal).start,
        win_rate_start,
    )
    # Month drivers pool 15 months up to the month, quarter drivers 5 quarters.
    need_start = min(
        shift(periods["month"][0], -(DRIVER_LOOKBACK_MONTHS - 1), cal).start,
        shift(periods["quarter"][0], -(DRIVER_LOOKBACK_MONTHS // 3 - 1), cal).start,
        win_rate_start,
    )
    return Scope(
        periods=periods,
        data_start=data_start,
        data_end=end,
        dirty_days=days,
        dirty=dirty,
        stored=stored,
        need_start=need_start,
        horizon=month_index(horizon.start, cal),
        previous=dict(last.details or {}) if last is not None else {},
        cal=cal,
    )


def stored_months(scope: Scope, cal: FiscalCalendar) -> tuple[int, int]:
    """The months the state is exact for once this compute is written.

    Records path: the months it read whole, those of the data window but its first (read
    from UTC midnight, which a timezone west of UTC puts in the month before). Stored path:
    those the state held and the window read or patched, when they adjoin (every change is
    applied to every month the state holds). Either way not before the data window of a
    compute starting at the history horizon: no compute will ask for older months."""
    window = (month_index(scope.data_start, cal) + 1, month_index(scope.data_end, cal))
    if scope.stored is not None:
        assert scope.need_start is not None
        window = (month_index(scope.need_start, cal), window[1])
        if scope.stored[1] >= window[0] - 1 and scope.stored[0] <= window[1] + 1:
            window = (min(window[0], scope.stored[0]), max(window[1], scope.stored[1]))
    return max(window[0], scope.horizon - DRIVER_LOOKBACK_MONTHS), window[1]
