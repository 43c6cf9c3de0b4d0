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
import io
import time as clock
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from analytics import drivers, gaps, trends
from analytics.currency import to_reporting_currency
from analytics.metric_rollups import (
    cycle_medians,
    month_to_period,
    patch_metrics,
    rollup_metrics,
    rollup_periods,
    shift_metrics,
    won_cycles,
)
from analytics.metrics import METRIC_COLUMNS, period_metrics
from analytics.periods import (
    FiscalCalendar,
    Period,
    index_label,
    period_from_index,
    period_index,
    period_of,
    periods_between,
    shift,
)
from analytics.targets import derive_rollup_targets, rollup_parts
from app.core.config import Settings
from app.performance import frames, versioning
from app.performance.marks import EVERY_PERIOD
from app.performance.membership import membership as current_membership
from app.performance.membership import team_in_period
from app.performance.membership import tenure as team_tenure
from app.performance.models import (
    ANY_REP,
    VERSIONING_COLUMNS,
    CoachingRow,
    ComputeState,
    DealChange,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    Snapshot,
)
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


def today(settings: Settings) -> date:
    return settings.today()


def _basis(settings: Settings) -> dict[str, Any]:
    """The settings stored monthly figures depend on: other ones make them stale."""
    return {
        "calendar": repr(settings.calendar),
        "timezone": settings.timezone,
        "rates": {str(k).upper(): float(v) for k, v in sorted(settings.currency_rates.items())},
    }


def _month_index(d: date, cal: FiscalCalendar) -> int:
    return int(period_index(pd.Series([pd.Timestamp(d)]), "month", cal)[0])


def _gap_basis(settings: Settings) -> dict[str, Any]:
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


def _scope(session: Session, settings: Settings, *, as_of: date, full: bool) -> Scope:
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
        if details.get("gap_basis") != _gap_basis(settings):
            candidates.append(EVERY_PERIOD)
        reach = min(candidates)
        months = details.get("stored_months")
        states = dict(session.execute(select(ComputeState.name, ComputeState.snapshot_id)).all())
        current = all(states.get(name) == last.id for name in STATE)
        if months and current and details.get("basis") == _basis(settings):
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
        horizon=_month_index(horizon.start, cal),
        previous=dict(last.details or {}) if last is not None else {},
        cal=cal,
    )


def _stored_months(scope: Scope, cal: FiscalCalendar) -> tuple[int, int]:
    """The months the state is exact for once this compute is written.

    Records path: the months it read whole, those of the data window but its first (read
    from UTC midnight, which a timezone west of UTC puts in the month before). Stored path:
    those the state held and the window read or patched, when they adjoin (every change is
    applied to every month the state holds). Either way not before the data window of a
    compute starting at the history horizon: no compute will ask for older months."""
    window = (_month_index(scope.data_start, cal) + 1, _month_index(scope.data_end, cal))
    if scope.stored is not None:
        assert scope.need_start is not None
        window = (_month_index(scope.need_start, cal), window[1])
        if scope.stored[1] >= window[0] - 1 and scope.stored[0] <= window[1] + 1:
            window = (min(window[0], scope.stored[0]), max(window[1], scope.stored[1]))
    return max(window[0], scope.horizon - DRIVER_LOOKBACK_MONTHS), window[1]


def _by_team(frame: pd.DataFrame, membership: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(membership, on="rep_id", how="inner")


def _due(deals: pd.DataFrame, as_of: date) -> npt.NDArray[np.bool_]:
    """Open, live deals with a close date on or after ``as_of``: a superset of the deals
    :func:`analytics.gaps.open_pipeline` counts in any period."""
    close = pd.to_datetime(deals["close_date"]).to_numpy(dtype="datetime64[D]")
    out: npt.NDArray[np.bool_] = (
        deals["status"].eq("open").to_numpy(dtype=bool, na_value=False)
        & ~deals["is_deleted"].to_numpy(dtype=bool)
        & ~np.isnat(close)
        & (close >= np.datetime64(as_of, "D"))
    )
    return out


@dataclass
class Frames:
    deals: pd.DataFrame
    activities: pd.DataFrame
    reps: pd.DataFrame
    teams: pd.DataFrame
    targets: pd.DataFrame
    membership: pd.DataFrame
    spans: pd.DataFrame  # team membership spans


# The columns the job reads (the frames' other columns are for other callers).
DEAL_COLUMNS = (
    "deal_id",
    "rep_id",
    "amount",
    "currency",
    "status",
    "probability",
    "created_at",
    "close_date",
    "closed_at",
    "is_deleted",
)
ACTIVITY_COLUMNS = ("rep_id", "type", "occurred_at", "is_deleted")
# What open_pipeline (and _due) read of a deal.
PIPELINE_COLUMNS = (
    "rep_id",
    "amount",
    "currency",
    "status",
    "probability",
    "close_date",
    "is_deleted",
)


def load(session: Session, scope: Scope) -> Frames:
    conn = session.connection()
    reps = frames.reps_frame(conn)
    teams = frames.teams_frame(conn)
    return Frames(
        deals=frames.deals_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=DEAL_COLUMNS,
            categorical=True,
        ),
        activities=frames.activities_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=ACTIVITY_COLUMNS,
            categorical=True,
        ),
        reps=reps,
        teams=teams,
        targets=frames.targets_frame(conn, periods=scope.target_labels),
        membership=current_membership(reps, teams),
        spans=frames.memberships_frame(conn),
    )


Cycles = dict[str, tuple[pd.DataFrame, pd.DataFrame]]


@dataclass
class Inputs:
    """What the stages after loading need: the org, the targets, every rep's monthly figures
    over the data window, the median sales cycles of quarters and years (and of team
    months), and the open deals that can count as pipeline."""

    reps: pd.DataFrame
    teams: pd.DataFrame
    targets: pd.DataFrame
    membership: pd.DataFrame  # today's (rep_id, team_id) pairs
    tenure: pd.DataFrame  # who counted for which team in each month (membership.tenure)
    spans: pd.DataFrame  # team membership spans (frames.memberships_frame)
    rep_month: pd.DataFrame
    cycles: Cycles
    due: pd.DataFrame
    # The state the next incremental compute starts from (see ComputeState).
    state: dict[str, pd.DataFrame] = field(default_factory=dict)
    deals: int = 0  # records read
    activities: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # parts of the load stage


def _cycles(rep_won: pd.DataFrame, tenure: pd.DataFrame, cal: FiscalCalendar) -> Cycles:
    """(rep, team) median sales cycles per period of each kind, from monthly won cycles; a
    team's are those of the deals its reps won in the months they were on it."""
    on_team = tenure[["rep_id", "period_index", "team_id"]]
    team_won = rep_won.merge(on_team, on=["rep_id", "period_index"]).drop(columns="rep_id")
    return {
        kind: (
            cycle_medians(_won_in(rep_won, kind, cal), key="rep_id"),
            cycle_medians(_won_in(team_won, kind, cal), key="team_id"),
        )
        for kind in KINDS
    }


def _metrics_from(
    rep_month: pd.DataFrame, cycles: Cycles, tenure: pd.DataFrame, settings: Settings
) -> dict[str, pd.DataFrame]:
    """Rep and team metrics of every period kind, with subject_type / subject_id.

    From the monthly rep figures: quarters and years are unions of fiscal months; a team's
    month pools its members' rows for their days on it (see :func:`rollup_metrics` and
    ``tenure``), and its quarters and years are unions of its months. The median sales cycle
    comes from ``cycles`` (the won deals of each quarter, year and team) rather than the
    members' medians.
    """
    cal = settings.calendar
    out: dict[str, pd.DataFrame] = {}
    team_month = pd.DataFrame()
    for kind in KINDS:
        rep_cycles, team_cycles = cycles[kind]
        if kind == "month":
            rep = rep_month
            team = team_month = rollup_metrics(
                rep_month, tenure, kind=kind, key="rep_id", to_key="team_id", cycles=team_cycles
            )
        else:
            rep = rollup_periods(rep_month, kind=kind, cal=cal, key="rep_id", cycles=rep_cycles)
            team = rollup_periods(team_month, kind=kind, cal=cal, key="team_id", cycles=team_cycles)
        out[kind] = _with_subjects(rep, team, settings, kind)
    return out


def _all_metrics(f: Frames, settings: Settings) -> dict[str, pd.DataFrame]:
    """:func:`_metrics_from` the records of ``f``: one pass over them for the monthly rep
    figures, and their won deals for the cycles."""
    i = _from_records(f, settings, as_of=None)
    return _metrics_from(i.rep_month, i.cycles, i.tenure, settings)


def _from_records(f: Frames, settings: Settings, as_of: date | None) -> Inputs:
    cal = settings.calendar
    rep_month = period_metrics(
        f.deals,
        f.activities,
        kind="month",
        cal=cal,
        rates=settings.currency_rates,
        tz=settings.timezone,
        key="rep_id",
    )
    rep_won = won_cycles(f.deals, kind="month", cal=cal, tz=settings.timezone, key="rep_id")
    due = f.deals.iloc[:0] if as_of is None else f.deals[_due(f.deals, as_of)]
    tenure = team_tenure(
        f.spans, f.reps, f.teams, months=rep_month["period_index"].to_numpy(), cal=cal
    )
    return Inputs(
        reps=f.reps,
        teams=f.teams,
        targets=f.targets,
        membership=f.membership,
        tenure=tenure,
        spans=f.spans,
        rep_month=rep_month,
        cycles=_cycles(rep_won.drop(columns="deal_id", errors="ignore"), tenure, cal),
        due=due,
        state={"rep_month": rep_month, "won": rep_won, "due": _due_state(due)},
        deals=len(f.deals),
        activities=len(f.activities),
    )


# A (rep, month) cell as one integer; reps and months are far below 2**31.
_CELL = 1 << 31


def _cell_codes(reps: npt.ArrayLike, months: npt.ArrayLike) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = np.asarray(months, dtype=np.int64) * _CELL + np.asarray(
        reps, dtype=np.int64
    )
    return out


@dataclass
class _Dirty:
    """The stale cells of one record kind: month index -> rep ids (None: every rep)."""

    months: dict[int, set[int] | None] = field(default_factory=dict)

    def add(self, month: int, rep: int) -> None:
        if rep == ANY_REP:
            self.months[month] = None
            return
        reps = self.months.setdefault(month, set())
        if reps is not None:
            reps.add(rep)

    def stale(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Which rows (cells) of a monthly ``rep_id, period_index`` frame are stale."""
        months = frame["period_index"].to_numpy(dtype=np.int64)
        every = [m for m, reps in self.months.items() if reps is None]
        pairs = [m * _CELL + r for m, reps in self.months.items() if reps for r in reps]
        out: npt.NDArray[np.bool_] = np.isin(months, every) | np.isin(
            _cell_codes(frame["rep_id"].to_numpy(), months), pairs
        )
        return out

    def runs(self) -> list[tuple[int, int, set[int] | None]]:
        """(first month, last month, reps): consecutive every-rep months in one run."""
        out: list[tuple[int, int, set[int] | None]] = []
        for m in sorted(self.months):
            reps = self.months[m]
            if reps is None and out and out[-1][2] is None and out[-1][1] == m - 1:
                out[-1] = (out[-1][0], m, None)
            else:
                out.append((m, m, reps))
        return out


_NO_DEALS = pd.DataFrame(
    {
        "rep_id": pd.Series(dtype="int64"),
        "amount": pd.Series(dtype="float64"),
        "currency": pd.Series(dtype=object),
        "status": pd.Series(dtype=object),
        "created_at": pd.Series(dtype="datetime64[us, UTC]"),
        "close_date": pd.Series(dtype="datetime64[ns]"),
        "closed_at": pd.Series(dtype="datetime64[us, UTC]"),
        "is_deleted": pd.Series(dtype=bool),
    }
)
_NO_ACTIVITIES = pd.DataFrame(
    {
        "rep_id": pd.Series(dtype="int64"),
        "type": pd.Series(dtype=object),
        "occurred_at": pd.Series(dtype="datetime64[us, UTC]"),
        "is_deleted": pd.Series(dtype=bool),
    }
)


STATE = ("rep_month", "won", "due")


def _array(column: pd.Series) -> npt.NDArray[Any]:
    """A column as ``numpy.savez`` keeps it without pickling: numbers, dates, or text."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "M":
        return column.to_numpy()
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy()
    if column.dtype == object and pd.api.types.infer_dtype(column) in ("integer", "floating"):
        return pd.to_numeric(column).to_numpy()  # an empty frame's numbers may be objects
    return column.astype(str).to_numpy(dtype=str)


def _save_state(session: Session, snapshot_id: int, state: dict[str, pd.DataFrame]) -> None:
    """Replace the ComputeState rows: each frame's columns as one ``numpy.savez`` archive."""
    session.execute(delete(ComputeState))
    rows = []
    for name in STATE:
        frame = state[name]
        buffer = io.BytesIO()
        # Labels are derived again on load.
        arrays: dict[str, Any] = {str(c): _array(frame[c]) for c in frame.columns if c != "period"}
        np.savez(buffer, **arrays)
        rows.append({"name": name, "snapshot_id": snapshot_id, "data": buffer.getvalue()})
    session.execute(insert(ComputeState), rows)


def _state_archives(session: Session) -> list[tuple[str, bytes]]:
    stmt = select(ComputeState.name, ComputeState.data)
    if session.get_bind().dialect.name != "postgresql":
        return [(name, data) for name, data in session.execute(stmt)]
    # In binary: as text, PostgreSQL sends bytea as hex, twice the bytes to send and decode
    # (80 ms for the 17 MB of archives at full scale, against 20 ms).
    session.flush()
    conn = session.connection().connection.driver_connection
    with conn.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute("SELECT name, data FROM compute_state")
        rows: list[tuple[str, bytes]] = cursor.fetchall()
        return rows


def _load_state(session: Session) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for name, data in _state_archives(session):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            out[name] = pd.DataFrame({c: archive[c] for c in archive.files})
        for c in ("deal_id", "rep_id", "period_index"):
            if c in out[name]:
                out[name][c] = out[name][c].astype(np.int64)
    months = out["rep_month"]
    labels = {i: index_label("month", i) for i in pd.unique(months["period_index"])}
    months.insert(1, "period", months["period_index"].map(labels).astype(object))
    return out


def _in_months(frame: pd.DataFrame, months: set[int]) -> npt.NDArray[np.bool_]:
    return frame["period_index"].isin(months).to_numpy()


# What a deal's figures depend on: period_metrics and won_cycles read these.
DELTA_COLUMNS = [c for c in DEAL_COLUMNS if c != "probability"]


def _due_state(due: pd.DataFrame) -> pd.DataFrame:
    return due[["deal_id", *(c for c in PIPELINE_COLUMNS if c not in ("status", "is_deleted"))]]


def _due_from_state(
    state: dict[str, pd.DataFrame],
    changed: npt.NDArray[np.int64],
    after: pd.DataFrame,
    scope: Scope,
    as_of: date,
) -> pd.DataFrame | None:
    """The open deals due from ``as_of`` to the end of the scope: those of the state but the
    ``changed`` ones (by id), which are as ``after`` has them now (if at all: a deal left
    without a rep is in no frame). None when the state's range does not cover that span
    (as_of went back, or the scope now ends later)."""
    span = scope.previous.get("due_range")
    if span is None or as_of < date.fromisoformat(span[0]):
        return None
    if scope.data_end > date.fromisoformat(span[1]):
        return None
    kept = state["due"]
    kept = kept[~kept["deal_id"].isin(changed)].assign(status="open", is_deleted=False)
    due = pd.concat([kept, after[kept.columns]], ignore_index=True)
    for c in ("currency", "status"):
        due[c] = due[c].astype(object)
    return due[_due(due, as_of)]


def _from_stored(session: Session, scope: Scope, settings: Settings, as_of: date) -> Inputs:
    """The inputs of an incremental compute: the stored state (ComputeState), shifted by the
    deals changed since (DealChange) and patched with the records of the dirty activity cells
    and of the months the state does not hold (see the module docstring)."""
    assert scope.stored is not None and scope.need_start is not None
    cal, tz, rates = settings.calendar, settings.timezone, settings.currency_rates
    conn = session.connection()
    reps = frames.reps_frame(conn)
    teams = frames.teams_frame(conn)
    membership = current_membership(reps, teams)
    months = periods_between(scope.need_start, scope.data_end, "month", cal)
    window = {_month_index(p.start, cal) for p in months}
    lo, hi = min(window), max(window)
    held = set(range(scope.stored[0], scope.stored[1] + 1))
    by_index = {i: period_from_index("month", i, cal) for i in window | held}

    timings: dict[str, float] = {}
    t = clock.perf_counter()
    state = _load_state(session)
    base = state["rep_month"][_in_months(state["rep_month"], held)]
    timings["state"] = clock.perf_counter() - t

    # Cells read again from the records: every rep's, in the window's months the state does
    # not hold; the marked ones of activities (deals shift by their changes instead).
    dirty = {"deal": _Dirty(), "activity": _Dirty()}
    marks = [(d, rep) for d, kind, rep in scope.dirty if kind == "activity"]
    if marks:
        days = pd.Series(
            [pd.Timestamp(d + timedelta(days=k)) for d, _ in marks for k in (-1, 0, 1)]
        )
        marked = period_index(days, "month", cal).reshape(-1, 3)
        for (_, rep), month_of in zip(marks, marked.tolist(), strict=True):
            for m in set(month_of):
                if m in by_index:
                    dirty["activity"].add(m, rep)
    for m in window - held:
        dirty["deal"].add(m, ANY_REP)
        dirty["activity"].add(m, ANY_REP)

    t = clock.perf_counter()
    n_deals = n_activities = 0
    fresh_deals: list[pd.DataFrame] = []
    fresh_won: list[pd.DataFrame] = []
    for first, last, _ in dirty["deal"].runs():  # every rep's
        p0, p1 = by_index[first], by_index[last]
        d = frames.deals_frame(
            conn,
            closing_or_created=(p0.start - timedelta(days=1), p1.end + timedelta(days=1)),
            columns=DELTA_COLUMNS,
            categorical=True,
        )
        n_deals += len(d)
        part = period_metrics(
            d, _NO_ACTIVITIES, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id"
        )
        fresh_deals.append(part[part["period_index"].between(first, last)])
        won = won_cycles(d, kind="month", cal=cal, tz=tz, key="rep_id")
        fresh_won.append(won[won["period_index"].between(first, last)])
    fresh_activities: list[pd.DataFrame] = []
    for first, last, rep_ids in dirty["activity"].runs():
        p0, p1 = by_index[first], by_index[last]
        a = frames.activities_frame(
            conn,
            since=p0.start - timedelta(days=1),
            until=p1.end + timedelta(days=1),
            reps=None if rep_ids is None else sorted(rep_ids),
            columns=ACTIVITY_COLUMNS,
            categorical=True,
        )
        n_activities += len(a)
        part = period_metrics(_NO_DEALS, a, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id")
        keep = part["period_index"].between(first, last)
        if rep_ids is not None:
            keep &= part["rep_id"].isin(rep_ids)
        fresh_activities.append(part[keep])
    rep_month = base
    if dirty["deal"].months or dirty["activity"].months:
        empty = period_metrics(
            _NO_DEALS, _NO_ACTIVITIES, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id"
        )
        rep_month = patch_metrics(
            base,
            deals=pd.concat([empty, *fresh_deals], ignore_index=True),
            deals_stale=dirty["deal"].stale(base),
            activities=pd.concat([empty, *fresh_activities], ignore_index=True),
            activities_stale=dirty["activity"].stale(base),
            kind="month",
        )
    timings["cells"] = clock.perf_counter() - t

    # Changed deals: out with what the state counted of them, in with what they are now,
    # in the months the state holds (the others were read whole above).
    t = clock.perf_counter()
    before = frames.deal_befores_frame(conn, columns=DELTA_COLUMNS, categorical=True)
    # Every deal changed since, existing or new (a deal whose first change added it has no
    # before image).
    after = frames.deals_frame(conn, changed=True, columns=DEAL_COLUMNS, categorical=True)
    n_deals += len(before) + len(after)

    def counted(deals: pd.DataFrame) -> pd.DataFrame:
        part = period_metrics(
            deals, _NO_ACTIVITIES, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id"
        )
        return part[_in_months(part, held)]

    changed_ids = np.union1d(before["deal_id"].to_numpy(), after["deal_id"].to_numpy())
    old_won = state["won"]
    won_after = won_cycles(after, kind="month", cal=cal, tz=tz, key="rep_id")
    won = pd.concat(
        [
            old_won[~old_won["deal_id"].isin(changed_ids) & _in_months(old_won, held)],
            won_after[_in_months(won_after, held)],
            *fresh_won,
        ],
        ignore_index=True,
    )
    added, removed = counted(after), counted(before)
    touched = pd.concat([added, removed])[["rep_id", "period_index"]].drop_duplicates()
    in_touched = won.merge(touched, on=["rep_id", "period_index"], how="inner")
    rep_month = shift_metrics(
        rep_month,
        added=added,
        removed=removed,
        cycles=cycle_medians(in_touched, key="rep_id"),
        kind="month",
    )
    timings["changes"] = clock.perf_counter() - t

    # Quarter, year and team medians: from the won deals of the periods wanted.
    t = clock.perf_counter()
    first_quarter = shift(scope.periods["quarter"][0], -(DRIVER_LOOKBACK_MONTHS // 3 - 1), cal)
    since = min(first_quarter.start, *(scope.periods[k][0].start for k in ("month", "year")))
    in_range = won[won["period_index"] >= _month_index(since, cal)].drop(columns="deal_id")
    spans = frames.memberships_frame(conn)
    tenure = team_tenure(spans, reps, teams, months=np.arange(lo, hi + 1), cal=cal)
    cycles = _cycles(in_range, tenure, cal)
    timings["cycles"] = clock.perf_counter() - t

    t = clock.perf_counter()
    due = _due_from_state(state, changed_ids, after, scope, as_of)
    if due is None:
        due = frames.deals_frame(
            conn,
            status="open",
            deleted=False,
            closing=(as_of, scope.data_end),
            columns=["deal_id", *PIPELINE_COLUMNS],
            categorical=True,
        )
        n_deals += len(due)
        due = due[_due(due, as_of)]
    timings["pipeline"] = clock.perf_counter() - t
    return Inputs(
        reps=reps,
        teams=teams,
        targets=frames.targets_frame(conn, periods=scope.target_labels),
        membership=membership,
        tenure=tenure,
        spans=spans,
        rep_month=rep_month[rep_month["period_index"].between(lo, hi)],
        cycles=cycles,
        due=due,
        state={"rep_month": rep_month, "won": won, "due": _due_state(due)},
        deals=n_deals,
        activities=n_activities,
        timings=timings,
    )


def _won_in(won: pd.DataFrame, kind: str, cal: FiscalCalendar) -> pd.DataFrame:
    """A monthly :func:`won_cycles` frame with its periods mapped to ``kind``."""
    if kind == "month":
        return won
    return won.assign(period_index=month_to_period(won["period_index"].to_numpy(), kind, cal))


def _with_subjects(
    rep: pd.DataFrame, team: pd.DataFrame, settings: Settings, kind: str
) -> pd.DataFrame:
    rep = rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    team = team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    out = pd.concat([rep, team], ignore_index=True).assign(period_kind=kind)
    starts = {
        i: period_from_index(kind, i, settings.calendar).start
        for i in pd.unique(out["period_index"])
    }
    out["period_start"] = out["period_index"].map(starts)
    return out


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
    started = clock.perf_counter()
    as_of = as_of or today(settings)
    if session.get_bind().dialect.name == "postgresql":
        # Changes a sync commits while this runs wait for its end, so the marks and changes
        # this compute clears are exactly those it read (SQLite: its one writer at a time).
        session.execute(text("LOCK TABLE dirty_days, deal_changes IN EXCLUSIVE MODE"))
    scope = _scope(session, settings, as_of=as_of, full=full)
    snapshot = Snapshot(
        status="building",
        kind="full" if full else "incremental",
        trigger=trigger,
        as_of=as_of,
        periods=scope.labels,
    )
    session.add(snapshot)
    session.flush()
    records = load(session, scope) if scope.stored is None else None
    inputs = _from_stored(session, scope, settings, as_of) if records is None else None
    timings: dict[str, float] = {"load": clock.perf_counter() - started}
    cal = settings.calendar

    t = clock.perf_counter()
    if inputs is None:  # the one pass over the records is the metrics stage's, as before
        assert records is not None
        inputs = _from_records(records, settings, as_of)
        del records
    timings.update({f"load.{k}": v for k, v in inputs.timings.items()})
    f = inputs
    metrics = _metrics_from(inputs.rep_month, inputs.cycles, inputs.tenure, settings)
    timings["metrics"] = clock.perf_counter() - t

    t = clock.perf_counter()
    in_scope = {kind: {p.label for p in scope.periods[kind]} for kind in KINDS}
    all_periods = [p for ps in scope.periods.values() for p in ps]
    # Only open deals due from as_of on can count (open_pipeline's own rule): the team
    # merge then copies those few rather than every deal.
    due = inputs.due
    rep_pipeline = gaps.open_pipeline(
        due, periods=all_periods, as_of=as_of, rates=settings.currency_rates, key="rep_id"
    )
    team_pipeline = gaps.open_pipeline(
        _by_team(due, f.membership),
        periods=all_periods,
        as_of=as_of,
        rates=settings.currency_rates,
        key="team_id",
    )
    pipeline = _subjects(rep_pipeline, team_pipeline)
    monthly = metrics["month"]
    win_rates = _subjects(
        gaps.trailing_win_rate(
            monthly[monthly["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="rep_id",
        ),
        gaps.trailing_win_rate(
            monthly[monthly["subject_type"] == "team"].rename(columns={"subject_id": "team_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="team_id",
        ),
    )
    actuals = pd.concat([m[m["period"].isin(in_scope[k])] for k, m in metrics.items()])
    config = gaps.GapConfig(
        as_of=as_of,
        cal=cal,
        pacing=settings.pacing,
        holidays=tuple(settings.holidays),
        on_track_min=settings.status_on_track_min,
        ramp_schedule=tuple(settings.ramp_schedule),
    )
    seasonal = settings.pacing == "seasonal"
    shares = _seasonal_shares(session, settings, f, as_of) if seasonal else None
    gap_rows = gaps.compute_gaps(
        derive_rollup_targets(f.targets, periods=scope.labels, reps=f.reps, config=config),
        actuals,
        reps=f.reps,
        pipeline=pipeline,
        win_rates=win_rates,
        config=config,
        shares=shares,
    )
    gap_rows = _with_streaks(session, gap_rows, scope, cal)
    timings["gaps"] = clock.perf_counter() - t

    t = clock.perf_counter()
    coaching = _coaching_table(metrics, f, in_scope, cal)
    timings["drivers"] = clock.perf_counter() - t

    t = clock.perf_counter()
    version = snapshot.id
    perf_key = ("subject_type", "rep_id", "team_id", "metric", "period")
    written = versioning.write(
        session,
        PerformanceRow,
        version=version,
        key=perf_key,
        frame=gap_rows,
        fields=[c for c in _PERFORMANCE_FIELDS if c in gap_rows and c not in perf_key],
        build=_performance_rows,
        scope=PerformanceRow.period.in_(scope.labels),
    )
    lap = clock.perf_counter()
    timings["write.performance"] = lap - t
    written += versioning.write(
        session,
        MetricRow,
        version=version,
        key=("subject_type", "subject_id", "period"),
        frame=actuals,
        fields=["period_kind", "period_start", *METRIC_COLUMNS],
        build=_metric_rows,
        scope=MetricRow.period.in_(scope.labels),
    )
    timings["write.metrics"], lap = clock.perf_counter() - lap, clock.perf_counter()
    written += versioning.write(
        session,
        CoachingRow,
        version=version,
        key=("rep_id", "period"),
        frame=coaching,
        fields=[c for c in coaching.columns if c not in ("rep_id", "period")],
        build=_coaching_rows,
        scope=CoachingRow.period.in_(scope.labels),
    )
    timings["write.coaching"], lap = clock.perf_counter() - lap, clock.perf_counter()
    stored_months = _stored_months(scope, cal)
    _save_state(
        session,
        version,
        {
            name: frame[
                frame["close_date"] <= pd.Timestamp(scope.data_end)
                if name == "due"
                else frame["period_index"].between(stored_months[0], stored_months[1])
            ]
            for name, frame in inputs.state.items()
        },
    )
    timings["write.state"] = clock.perf_counter() - lap
    # Every mark and change there is was read by this compute: no other writer can add one
    # meanwhile (the PostgreSQL lock above; SQLite's write transactions begin IMMEDIATE).
    session.execute(delete(DealChange))
    session.execute(delete(DirtyDay))
    keep = session.scalar(
        select(Snapshot.id)
        .where(
            Snapshot.computed_at
            >= snapshot.computed_at - timedelta(days=settings.snapshot_retention_days)
        )
        .order_by(Snapshot.id)
    )
    # Rows closed since the last purge have valid_to above its point: purging to the same
    # point again would find nothing (and scan the tables to find it).
    if keep is not None and scope.previous.get("purged_to") != keep:
        versioning.purge(session, keep_from_version=keep)
    timings["write"] = clock.perf_counter() - t

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
        "basis": _basis(settings),
        "gap_basis": _gap_basis(settings),
        "purged_to": keep,
    }
    session.flush()
    return snapshot


def _seasonal_shares(session: Session, settings: Settings, f: Inputs, as_of: date) -> pd.DataFrame:
    """Each team's learned booking curve, from two years of its won deals; a rep is paced on
    their team's curve (one rep's own history is too thin to learn a shape from)."""
    since = as_of - timedelta(days=2 * 366 + 92)
    won = frames.deals_frame(
        session.connection(),
        since=since,
        until=as_of,
        status="won",
        columns=("rep_id", "amount", "currency", "close_date", "is_deleted"),
        categorical=True,
    )
    won = won[~won["is_deleted"]]
    won = won.assign(
        value=to_reporting_currency(won["amount"], won["currency"], settings.currency_rates)
    )
    won = _by_team(won, f.membership)[["team_id", "close_date", "value"]]
    curves = pd.concat(
        [
            gaps.seasonal_shares(won, kind=kind, cal=settings.calendar, as_of=as_of, key="team_id")
            for kind in ("month", "quarter")
        ],
        ignore_index=True,
    )
    team_curves = curves.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    rep_teams = f.reps[["rep_id", "team_id"]].dropna()
    rep_curves = rep_teams.merge(curves, on="team_id").drop(columns="team_id")
    rep_curves = rep_curves.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    return pd.concat([team_curves, rep_curves], ignore_index=True)


def _subjects(rep: pd.DataFrame, team: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep"),
            team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team"),
        ],
        ignore_index=True,
    )


def _with_streaks(
    session: Session, rows: pd.DataFrame, scope: Scope, cal: FiscalCalendar
) -> pd.DataFrame:
    """consecutive_misses per row, continuing the runs stored for the periods before scope."""
    rows = rows.copy()
    if rows.empty:
        return rows.assign(consecutive_misses=pd.Series(dtype="int64"))
    cols = ["subject_type", "rep_id", "team_id", "metric", "period", "status"]
    prior = _prior_runs(session, scope, cal, cols)
    history = pd.concat([prior, rows[cols]], ignore_index=True)
    for col in ("rep_id", "team_id"):
        history[col] = history[col].astype("Int64")
    streak = trends.misses_by_period(history, key=["subject_type", "rep_id", "team_id"])
    rows["consecutive_misses"] = streak.to_numpy()[len(prior) :]
    return rows


def _prior_runs(
    session: Session, scope: Scope, cal: FiscalCalendar, cols: list[str]
) -> pd.DataFrame:
    """The stored rows of the period just before the scope, of each kind, a missed one
    preceded by the missed periods of its stored run: the history a run into the scope
    continues, without reading every stored period (a run is broken by any other row, or
    by a period without one)."""
    before = {kind: shift(ps[0], -1, cal) for kind, ps in scope.periods.items() if ps}
    stored = pd.DataFrame(
        session.execute(
            select(
                *(getattr(PerformanceRow, c) for c in cols), PerformanceRow.consecutive_misses
            ).where(
                PerformanceRow.valid_to.is_(None),
                PerformanceRow.period.in_([p.label for p in before.values()]),
            )
        ).all(),
        columns=[*cols, "run"],
    )
    if stored.empty:
        return stored[cols]
    missed = stored["status"].eq("missed").to_numpy(dtype=bool)
    run = stored["run"].fillna(0).to_numpy(dtype=np.int64)
    copies = np.where(missed, np.maximum(run, 1), 1)
    longest = int(copies.max())
    back = {p.label: [shift(p, -j, cal).label for j in range(longest)] for p in before.values()}
    out = stored.loc[stored.index.repeat(copies), cols].reset_index(drop=True)
    ends = np.cumsum(copies)
    # Position of each copy from its row's last one: 0 is the period just before the scope.
    step = ends[np.repeat(np.arange(len(copies)), copies)] - 1 - np.arange(int(ends[-1]))
    out["period"] = [back[label][k] for label, k in zip(out["period"], step.tolist(), strict=True)]
    return out


def _clean_columns(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[Any]]:
    """Each column's values as ``versioning.clean`` makes them (numpy -> Python, NaN -> None),
    as ``clean(record.get(column))`` over ``frame.to_dict("records")`` would give them, but
    converted a column at a time (``tolist``) rather than value by value."""
    n = len(frame)
    out: dict[str, list[Any]] = {}
    for name in columns:
        if name not in frame:
            out[name] = [None] * n
            continue
        series = frame[name]
        kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
        if kind == "f":
            array = series.to_numpy()
            values = array.tolist()
            for i in np.flatnonzero(np.isnan(array)).tolist():
                values[i] = None
        elif kind in "iub":
            values = series.tolist()
        elif pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
            # Text (the focus, its reason, labels): nothing to convert but missing values.
            values = series.tolist()
            for i in np.flatnonzero(series.isna().to_numpy()).tolist():
                values[i] = None
        else:  # objects and extension types: to_dict boxes a missing pd.NA as None
            values = [None if v is pd.NA else versioning.clean(v) for v in series.tolist()]
        out[name] = values
    return out


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


_PERFORMANCE_FIELDS = [
    c.key
    for c in PerformanceRow.__table__.columns
    if c.key not in VERSIONING_COLUMNS and c.key != "details"
]


# The row builders give ``versioning.write`` database columns (name -> values), not rows:
# it inserts a column at a time.


def _performance_rows(rows: pd.DataFrame) -> dict[str, list[Any]]:
    values = _clean_columns(rows, _PERFORMANCE_FIELDS)
    for c in ("rep_id", "team_id", "target_id"):
        values[c] = [None if v is None or pd.isna(v) else int(v) for v in values[c]]
    for c in ("period_start", "period_end"):
        days = {v: pd.Timestamp(v).date() for v in set(values[c])}
        values[c] = [days[v] for v in values[c]]
    values["consecutive_misses"] = [int(v or 0) for v in values["consecutive_misses"]]
    values["details"] = [{} for _ in range(len(rows))]
    return values


def _metric_rows(actuals: pd.DataFrame) -> dict[str, list[Any]]:
    return {
        "subject_type": actuals["subject_type"].tolist(),
        "subject_id": [int(v) for v in actuals["subject_id"].tolist()],
        "period": actuals["period"].tolist(),
        "period_kind": actuals["period_kind"].tolist(),
        "period_start": actuals["period_start"].tolist(),
        "values": _records(_clean_columns(actuals, METRIC_COLUMNS)),
    }


def _coaching_table(
    metrics: dict[str, pd.DataFrame],
    inputs: Inputs,
    in_scope: dict[str, set[str]],
    cal: FiscalCalendar,
) -> pd.DataFrame:
    """The driver tables of the months and quarters in scope, with ``period_kind``; a rep is
    compared with the team they were on in each period."""
    tables: list[pd.DataFrame] = []
    for kind in ("month", "quarter"):
        m = metrics[kind]
        rep_metrics = m[m["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"})
        reps = team_in_period(
            inputs.spans, inputs.reps, kind=kind, indices=rep_metrics["period_index"], cal=cal
        )
        # Quarters: a year of quarters against the quarter before it, within 15 months of data.
        config = (
            drivers.DriverConfig() if kind == "month" else drivers.DriverConfig(trailing_periods=1)
        )
        table = drivers.driver_table(rep_metrics, reps, config=config, periods=in_scope[kind])
        tables.append(table.assign(period_kind=kind))
    return pd.concat(tables, ignore_index=True)


def _coaching_rows(table: pd.DataFrame) -> dict[str, list[Any]]:
    names = [str(c) for c in table.columns if c != "period_kind"]
    values = _clean_columns(table, names)
    fixed = {"rep_id", "period", "coaching_focus", "focus_reason"}
    driver_values = _records({k: v for k, v in values.items() if k not in fixed})
    if not driver_values:  # no driver columns at all: one empty dict per row
        driver_values = [{} for _ in range(len(table))]
    return {
        "rep_id": [int(v) for v in table["rep_id"].tolist()],
        "period": table["period"].tolist(),
        "period_kind": table["period_kind"].tolist(),
        "coaching_focus": [
            None if focus is None or pd.isna(focus) else str(focus)
            for focus in values["coaching_focus"]
        ],
        "focus_reason": values["focus_reason"],
        "drivers": driver_values,
    }
