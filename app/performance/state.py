"""The stored state an incremental compute starts from (``ComputeState``), and how it is
brought up to date.

The state is what the last compute left: every rep's monthly figures, the won deals' sales
cycles and the open deals due. Each deal changed since (``DealChange``) takes out what the
state counted of it, its before image, and puts in what it is now; activities are read again
for the (activity, rep, month) cells a sync or import marked (``DirtyDay``, a day either
side), and every record for the months of the data window the state does not hold. Quarter
and year figures are rolled up from the months as in a full compute; medians (the sales
cycle), which do not roll up, come from the won deals of the state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from analytics.backtest import midpoint_figures, shift_midpoints
from analytics.metric_rollups import cycle_medians, patch_metrics, shift_metrics, won_cycles
from analytics.metrics import period_metrics
from analytics.periods import (
    Period,
    index_label,
    period_from_index,
    period_index,
    periods_between,
    shift,
)
from app.core.config import Settings
from app.performance import frames
from app.performance.inputs import (
    ACTIVITY_COLUMNS,
    DEAL_COLUMNS,
    DELTA_COLUMNS,
    PIPELINE_COLUMNS,
    Inputs,
    due_mask,
    due_state,
    sales_cycles,
)
from app.performance.membership import membership as current_membership
from app.performance.membership import tenure as team_tenure
from app.performance.models import ANY_REP, ComputeState
from app.performance.plan import DRIVER_LOOKBACK_MONTHS, STATE, Scope, month_index
from app.performance.timing import timed

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


def _array(column: pd.Series) -> npt.NDArray[Any]:
    """A column as ``numpy.savez`` keeps it without pickling: numbers, dates, or text."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "M":
        return column.to_numpy()
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy()
    if column.dtype == object and pd.api.types.infer_dtype(column) in ("integer", "floating"):
        return pd.to_numeric(column).to_numpy()  # an empty frame's numbers may be objects
    return column.astype(str).to_numpy(dtype=str)


def save_state(session: Session, snapshot_id: int, state: dict[str, pd.DataFrame]) -> None:
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


def load_state(session: Session) -> dict[str, pd.DataFrame]:
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
    return due[due_mask(due, as_of)]


@dataclass
class _Window:
    """The months an incremental compute works on: those of its data window (by index, from
    ``lo`` to ``hi``), those the state holds, and each one's period."""

    window: set[int]
    held: set[int]
    by_index: dict[int, Period]

    @property
    def lo(self) -> int:
        return min(self.window)

    @property
    def hi(self) -> int:
        return max(self.window)


@dataclass
class _Read:
    """Records read to bring the state up to date (counted in the snapshot's details)."""

    deals: int = 0
    activities: int = 0


def from_stored(session: Session, scope: Scope, settings: Settings, as_of: date) -> Inputs:
    """The inputs of an incremental compute: the stored state (ComputeState), shifted by the
    deals changed since (DealChange) and patched with the records of the dirty activity cells
    and of the months the state does not hold (see the module docstring)."""
    assert scope.stored is not None and scope.need_start is not None
    cal = settings.calendar
    conn = session.connection()
    reps = frames.reps_frame(conn)
    teams = frames.teams_frame(conn)
    membership = current_membership(reps, teams)
    months = periods_between(scope.need_start, scope.data_end, "month", cal)
    window = {month_index(p.start, cal) for p in months}
    held = set(range(scope.stored[0], scope.stored[1] + 1))
    w = _Window(window, held, {i: period_from_index("month", i, cal) for i in window | held})
    read = _Read()

    timings: dict[str, float] = {}
    with timed(timings, "state"):
        state = load_state(session)
        base = state["rep_month"][_in_months(state["rep_month"], held)]
    dirty = _dirty_cells(scope, settings, w)
    with timed(timings, "cells"):
        rep_month, fresh_won, fresh_mid = _read_cells(conn, settings, base, dirty, w, read)
    with timed(timings, "changes"):
        mids = state["rep_mid"]
        rep_mid = pd.concat([mids[_in_months(mids, held)], *fresh_mid], ignore_index=True)
        rep_month, won, rep_mid, changed_ids, after = _apply_changes(
            conn, settings, state, rep_month, rep_mid, fresh_won, w, read
        )
    # Quarter, year and team medians: from the won deals of the periods wanted.
    with timed(timings, "cycles"):
        first_quarter = shift(scope.periods["quarter"][0], -(DRIVER_LOOKBACK_MONTHS // 3 - 1), cal)
        since = min(first_quarter.start, *(scope.periods[k][0].start for k in ("month", "year")))
        in_range = won[won["period_index"] >= month_index(since, cal)].drop(columns="deal_id")
        spans = frames.memberships_frame(conn)
        tenure = team_tenure(spans, reps, teams, months=np.arange(w.lo, w.hi + 1), cal=cal)
        cycles = sales_cycles(in_range, tenure, cal)
    with timed(timings, "pipeline"):
        due = _due(conn, state, changed_ids, after, scope, as_of, read)
    return Inputs(
        reps=reps,
        teams=teams,
        targets=frames.targets_frame(conn, periods=scope.target_labels),
        membership=membership,
        tenure=tenure,
        spans=spans,
        rep_month=rep_month[rep_month["period_index"].between(w.lo, w.hi)],
        cycles=cycles,
        due=due,
        state={"rep_month": rep_month, "won": won, "due": due_state(due), "rep_mid": rep_mid},
        deals=read.deals,
        activities=read.activities,
        timings=timings,
    )


def _dirty_cells(scope: Scope, settings: Settings, w: _Window) -> dict[str, _Dirty]:
    """Cells read again from the records: every rep's, in the window's months the state does
    not hold; the marked ones of activities (deals shift by their changes instead)."""
    dirty = {"deal": _Dirty(), "activity": _Dirty()}
    marks = [(d, rep) for d, kind, rep in scope.dirty if kind == "activity"]
    if marks:
        days = pd.Series(
            [pd.Timestamp(d + timedelta(days=k)) for d, _ in marks for k in (-1, 0, 1)]
        )
        marked = period_index(days, "month", settings.calendar).reshape(-1, 3)
        for (_, rep), month_of in zip(marks, marked.tolist(), strict=True):
            for m in set(month_of):
                if m in w.by_index:
                    dirty["activity"].add(m, rep)
    for m in w.window - w.held:
        dirty["deal"].add(m, ANY_REP)
        dirty["activity"].add(m, ANY_REP)
    return dirty


def _read_cells(
    conn: Connection,
    settings: Settings,
    base: pd.DataFrame,
    dirty: dict[str, _Dirty],
    w: _Window,
    read: _Read,
) -> tuple[pd.DataFrame, list[pd.DataFrame], list[pd.DataFrame]]:
    """The state's monthly figures with the ``dirty`` cells read again from the records, and
    the won deals and midpoint figures (:func:`midpoint_figures`) of the months read whole."""
    cal, tz, rates = settings.calendar, settings.timezone, settings.currency_rates
    fresh_deals: list[pd.DataFrame] = []
    fresh_won: list[pd.DataFrame] = []
    fresh_mid: list[pd.DataFrame] = []
    for first, last, _ in dirty["deal"].runs():  # every rep's
        p0, p1 = w.by_index[first], w.by_index[last]
        d = frames.deals_frame(
            conn,
            closing_or_created=(p0.start - timedelta(days=1), p1.end + timedelta(days=1)),
            columns=DELTA_COLUMNS,
            categorical=True,
        )
        read.deals += len(d)
        part = period_metrics(
            d, _NO_ACTIVITIES, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id"
        )
        fresh_deals.append(part[part["period_index"].between(first, last)])
        won = won_cycles(d, kind="month", cal=cal, tz=tz, key="rep_id")
        fresh_won.append(won[won["period_index"].between(first, last)])
        # Keyed by close month, as the won figures: the deals read cover those months.
        mid = midpoint_figures(d, cal=cal, rates=rates, tz=tz, key="rep_id")
        fresh_mid.append(mid[mid["period_index"].between(first, last)])
    fresh_activities: list[pd.DataFrame] = []
    for first, last, rep_ids in dirty["activity"].runs():
        p0, p1 = w.by_index[first], w.by_index[last]
        a = frames.activities_frame(
            conn,
            since=p0.start - timedelta(days=1),
            until=p1.end + timedelta(days=1),
            reps=None if rep_ids is None else sorted(rep_ids),
            columns=ACTIVITY_COLUMNS,
            categorical=True,
        )
        read.activities += len(a)
        part = period_metrics(_NO_DEALS, a, kind="month", cal=cal, rates=rates, tz=tz, key="rep_id")
        keep = part["period_index"].between(first, last)
        if rep_ids is not None:
            keep &= part["rep_id"].isin(rep_ids)
        fresh_activities.append(part[keep])
    if not (dirty["deal"].months or dirty["activity"].months):
        return base, fresh_won, fresh_mid
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
    return rep_month, fresh_won, fresh_mid


def _apply_changes(
    conn: Connection,
    settings: Settings,
    state: dict[str, pd.DataFrame],
    rep_month: pd.DataFrame,
    rep_mid: pd.DataFrame,
    fresh_won: list[pd.DataFrame],
    w: _Window,
    read: _Read,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, npt.NDArray[np.int64], pd.DataFrame]:
    """Changed deals: out with what the state counted of them, in with what they are now,
    in the months the state holds (the others were read whole by :func:`_read_cells`).

    Returns the monthly figures, the won deals, the midpoint figures, the changed deals' ids
    and what they are now.
    """
    cal, tz, rates = settings.calendar, settings.timezone, settings.currency_rates
    held = w.held
    before = frames.deal_befores_frame(conn, columns=DELTA_COLUMNS, categorical=True)
    # Every deal changed since, existing or new (a deal whose first change added it has no
    # before image).
    after = frames.deals_frame(conn, changed=True, columns=DEAL_COLUMNS, categorical=True)
    read.deals += len(before) + len(after)

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

    def mid_of(deals: pd.DataFrame) -> pd.DataFrame:
        part = midpoint_figures(deals, cal=cal, rates=rates, tz=tz, key="rep_id")
        return part[_in_months(part, held)]

    rep_mid = shift_midpoints(rep_mid, added=mid_of(after), removed=mid_of(before))
    return rep_month, won, rep_mid, changed_ids, after


def _due(
    conn: Connection,
    state: dict[str, pd.DataFrame],
    changed_ids: npt.NDArray[np.int64],
    after: pd.DataFrame,
    scope: Scope,
    as_of: date,
    read: _Read,
) -> pd.DataFrame:
    """The open deals due: from the state when it covers the span, else from the records."""
    due = _due_from_state(state, changed_ids, after, scope, as_of)
    if due is not None:
        return due
    due = frames.deals_frame(
        conn,
        status="open",
        deleted=False,
        closing=(as_of, scope.data_end),
        columns=["deal_id", *PIPELINE_COLUMNS],
        categorical=True,
    )
    read.deals += len(due)
    return due[due_mask(due, as_of)]
