"""Suggested targets from each rep's own history (``POST /api/v1/targets/suggest``).

They read the records' history through the compute's loaders (:mod:`app.performance.frames`),
which is why they live with the figures rather than in :mod:`app.targets`: targets sit below
the performance package (a compute reads targets), never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analytics.metrics import ADDITIVE_METRICS, additive_actuals
from analytics.periods import (
    Period,
    same_period_last_year,
)
from analytics.periods import shift as shift_period
from app.activities.models import Activity
from app.core.config import Settings
from app.core.exceptions import InvalidInputError
from app.core.periods import parse
from app.deals.models import Deal
from app.performance import frames
from app.reps.models import Rep
from app.targets.schemas import Suggestion, SuggestRequest

# How an additive metric dates its records (the rest count activities by occurred_at).
CLOSING_METRICS = frozenset({"won_revenue", "won_deals"})
CREATION_METRICS = frozenset({"pipeline_created", "opportunities"})
YEAR_BACK = "a year back"


def suggest(*, session: Session, request: SuggestRequest, settings: Settings) -> list[Suggestion]:
    """Propose targets from each active rep's history; nothing is written.

    ``last_year_growth``: actual in the same period last year × (1 + growth_pct / 100).
    ``trailing_average``: mean actual over the previous ``trailing_periods`` periods that are
    in the rep's history × (1 + growth_pct / 100).

    A period is in a rep's history when both the rep (their ``start_date``, else their first
    deal or activity) and the metric's data (its first close, creation or activity) had
    started by its end. A row without the history its method needs gets ``value`` null and
    its ``reason``, unless ``fallback`` asks for the trailing average or the team's median;
    a 0 from history says so in ``reason``. Never a silent 0.
    """
    cal = settings.calendar
    _check_suggest(request)
    period = parse(request.period, cal)
    last_year = [same_period_last_year(period, cal)]
    trailing = [shift_period(period, -i, cal) for i in range(1, request.trailing_periods + 1)]
    needed = last_year if request.method == "last_year_growth" else trailing
    if request.fallback == "trailing_average":
        needed = [*last_year, *trailing]
    stmt = select(Rep).where(Rep.role == "rep", Rep.is_active.is_(True)).order_by(Rep.id)
    if request.team_id is not None:
        stmt = stmt.where(Rep.team_id == request.team_id)
    reps = list(session.scalars(stmt))
    table = _history_actuals(session, settings, request.metric, needed, kind=period.kind)
    data_start, firsts = _history_starts(session, request.metric)
    factor = 1 + request.growth_pct / 100
    trailing_what = f"in the last {len(trailing)} periods"
    out: list[Suggestion] = []
    for rep in reps:
        history = _History(rep, data_start, firsts.get(rep.id), table)
        if request.method == "last_year_growth":
            value, basis, reason = history.propose(last_year, factor, what=YEAR_BACK)
        else:
            value, basis, reason = history.propose(trailing, factor, what=trailing_what)
        method: str = request.method
        if value is None and request.fallback == "trailing_average":
            average, average_basis, why = history.propose(trailing, factor, what=trailing_what)
            if average is None:
                reason = f"{reason}; {why}"
            else:
                value, basis, method = average, average_basis, f"{method}:trailing_average"
                reason = "; ".join(filter(None, (f"{reason}: the trailing average is used", why)))
        out.append(
            Suggestion(
                rep_id=rep.id,
                metric=request.metric,
                period=period.label,
                value=value,
                rep_name=rep.name,
                method=method,
                basis=basis,
                history_start=history.start,
                reason=reason,
            )
        )
    if request.fallback == "team_median":
        _team_median(out, {r.id: r.team_id for r in reps}, method=request.method)
    return out


def _check_suggest(request: SuggestRequest) -> None:
    if request.metric not in ADDITIVE_METRICS:
        raise InvalidInputError(
            f"suggestions work for additive metrics ({', '.join(ADDITIVE_METRICS)})",
            details=[{"field": "metric", "message": f"{request.metric!r} is not additive"}],
        )
    if request.method == "trailing_average" and request.fallback == "trailing_average":
        raise InvalidInputError(
            "fallback trailing_average is for method last_year_growth",
            details=[{"field": "fallback", "message": "use none or team_median with this method"}],
        )


def _history_actuals(
    session: Session, settings: Settings, metric: str, periods: Sequence[Period], *, kind: str
) -> pd.DataFrame:
    """Each rep's actual of ``metric`` in each of ``periods`` (rep x label; NaN: none)."""
    conn = session.connection()
    since = min(p.start for p in periods)
    until = max(p.end for p in periods)
    actuals = additive_actuals(
        frames.deals_frame(conn, since=since, until=until),
        frames.activities_frame(conn, since=since, until=until),
        kind=kind,
        cal=settings.calendar,
        rates=settings.currency_rates,
    )
    actuals = actuals[actuals["metric"] == metric]
    by_rep = actuals.pivot_table(index="rep_id", columns="period", values="value", aggfunc="sum")
    return by_rep.reindex(columns=list(dict.fromkeys(p.label for p in periods)))


def _history_starts(session: Session, metric: str) -> tuple[date | None, dict[int, date]]:
    """The day the data of ``metric`` starts, and each rep's first deal or activity.

    The data starts at the first record dated the way the metric places records in periods
    (a won or lost deal's close date, a deal's creation, an activity): a deal created long
    before the first recorded closing does not make closings a year back known.
    """
    live_deal = (Deal.rep_id.is_not(None), Deal.is_deleted.is_(False))
    live_activity = (Activity.rep_id.is_not(None), Activity.is_deleted.is_(False))
    if metric in CLOSING_METRICS:
        data = select(func.min(Deal.close_date)).where(*live_deal, Deal.status != "open")
    elif metric in CREATION_METRICS:
        data = select(func.min(Deal.created_at)).where(*live_deal)
    else:
        data = select(func.min(Activity.occurred_at)).where(*live_activity)
    firsts: dict[int, date] = {}
    deals = select(Deal.rep_id, func.min(Deal.created_at), func.min(Deal.close_date))
    activities = select(Activity.rep_id, func.min(Activity.occurred_at))
    for rep_id, *days in [
        *session.execute(deals.where(*live_deal).group_by(Deal.rep_id)),
        *session.execute(activities.where(*live_activity).group_by(Activity.rep_id)),
    ]:
        for day in filter(None, map(_day, days)):
            firsts[rep_id] = min(firsts.get(rep_id, day), day)
    return _day(session.scalar(data)), firsts


def _day(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


class _History:
    """What a rep's history holds: which periods it covers and what they booked in them."""

    def __init__(
        self, rep: Rep, data_start: date | None, first: date | None, table: pd.DataFrame
    ) -> None:
        self.rep = rep
        self.data_start = data_start
        self.rep_start = rep.start_date or first
        self.start = max(self.rep_start, data_start) if self.rep_start and data_start else None
        self.row = table.loc[rep.id] if rep.id in table.index else None

    def covers(self, p: Period) -> bool:
        return self.start is not None and self.start <= p.end

    def actual(self, p: Period) -> float | None:
        """Booked in ``p``: 0 when it is in the history without a record, None outside it."""
        if not self.covers(p):
            return None
        value = self.row.get(p.label) if self.row is not None else None
        return 0.0 if value is None or pd.isna(value) else float(value)

    def propose(
        self, periods: Sequence[Period], factor: float, *, what: str
    ) -> tuple[float | None, dict[str, float | None], str | None]:
        """(value, basis, reason): the mean actual over the covered ``periods`` × factor;
        ``what`` names the periods in a reason ("a year back")."""
        basis = {p.label: self.actual(p) for p in periods}
        known = [v for v in basis.values() if v is not None]
        if not known:
            return None, basis, self._missing(periods, what)
        value = round(sum(known) / len(known) * factor, 2)
        notes = []
        if len(known) < len(periods):
            notes.append(
                f"averaged over the {len(known)} of {len(periods)} periods in the rep's "
                f"history (it starts on {self.start})"
            )
        joined = self.rep.start_date
        notes += [
            f"the rep joined on {joined}, during {p.label}: its actual covers only part of it"
            for p in periods
            if joined is not None and p.start < joined <= p.end and self.covers(p)
        ]
        if not any(known):
            notes.append(f"booked 0 in {', '.join(basis)}: a genuine 0 from the rep's history")
        return value, basis, "; ".join(notes) or None

    def _missing(self, periods: Sequence[Period], what: str) -> str:
        labels = ", ".join(p.label for p in periods)
        if self.data_start is None:
            return f"no history {what}: the data holds no record of this metric yet"
        if self.rep_start is None:
            return f"no history {what}: the rep has no start date and no deals or activities"
        if self.data_start > max(p.end for p in periods):
            return f"no history {what}: the data starts on {self.data_start}, after {labels}"
        return f"no history {what}: the rep started on {self.rep_start}, after {labels}"


def _team_median(out: list[Suggestion], team_of: Mapping[int, int | None], *, method: str) -> None:
    """Rows without a value get the median of their team's values computed as asked."""
    asked = pd.Series(
        {s.rep_id: s.value for s in out if s.value is not None and s.method == method},
        dtype="float64",
    )
    medians = asked.groupby(asked.index.map(lambda r: team_of.get(r) or 0)).median()
    for s in out:
        if s.value is not None:
            continue
        median = medians.get(team_of.get(s.rep_id) or 0)
        if median is None or pd.isna(median):
            s.reason = f"{s.reason}; no teammate has the history for a team median"
            continue
        s.value, s.method = round(float(median), 2), f"{method}:team_median"
        s.reason = f"{s.reason}: the team's median suggestion is used"
