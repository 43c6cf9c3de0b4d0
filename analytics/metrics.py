"""The metric catalogue and the per-subject, per-period metrics frame.

Input frames (one row per record; deleted records may be present, flagged ``is_deleted``):

* deals: ``rep_id, amount, currency, status ('open'|'won'|'lost'), created_at (UTC),
  close_date (date), closed_at (UTC or NaT), is_deleted``
* activities: ``rep_id, type ('call'|'email'|'meeting'|'task'), occurred_at (UTC), is_deleted``

Formulas (``docs/metrics.md`` is the long form). "In the period" means: by ``close_date`` for
won/lost figures, by ``created_at`` for pipeline and opportunities, by ``occurred_at`` for
activities; timestamps are read in the reporting timezone. Deleted records never count; open
deals count only in pipeline figures. Amounts are converted with ``rate(currency)``.

* ``won_revenue``      = Σ amount × rate over won deals closed in the period
* ``won_deals``        = count of won deals closed in the period
* ``lost_deals``       = count of lost deals closed in the period
* ``closed_deals``     = won_deals + lost_deals
* ``closed_value``     = Σ amount × rate over won and lost deals closed in the period
* ``opportunities``    = count of deals created in the period (any status)
* ``pipeline_created`` = Σ amount × rate over deals created in the period (any status)
* ``activities``       = count of activities in the period; ``calls``, ``emails``,
  ``meetings``, ``tasks`` count one type each
* ``win_rate``         = won_deals / closed_deals (NaN when nothing closed)
* ``win_rate_value``   = won_revenue / closed_value (NaN when closed_value is 0)
* ``avg_deal_size``    = won_revenue / won_deals (NaN when nothing was won)
* ``sales_cycle_days`` = median over won deals closed in the period of
  (closed_at, else close_date) − created_at, in days
* ``sales_velocity``   = opportunities × win_rate × avg_deal_size / sales_cycle_days
  (revenue per day the current funnel produces)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.periods import (
    MISSING_INDEX,
    FiscalCalendar,
    index_label,
    period_from_index,
    period_index,
)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "currency" | "count" | "ratio" | "days" | "currency_per_day"
    higher_is_better: bool
    additive: bool  # sums over reps and over sub-periods
    inputs: tuple[str, ...]  # the columns its formula reads
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "won_revenue",
            "currency",
            True,
            True,
            ("won_deals",),
            "Revenue of deals won (closed) in the period",
        ),
        Metric("won_deals", "count", True, True, (), "Deals won in the period"),
        Metric(
            "pipeline_created",
            "currency",
            True,
            True,
            ("opportunities",),
            "Amount of deals created in the period",
        ),
        Metric("opportunities", "count", True, True, (), "Deals created in the period"),
        Metric(
            "activities",
            "count",
            True,
            True,
            ("calls", "emails", "meetings", "tasks"),
            "Calls, emails, meetings and tasks logged",
        ),
        Metric("calls", "count", True, True, (), "Calls logged"),
        Metric("emails", "count", True, True, (), "Emails logged"),
        Metric("meetings", "count", True, True, (), "Meetings logged"),
        Metric("tasks", "count", True, True, (), "Tasks logged"),
        Metric(
            "win_rate",
            "ratio",
            True,
            False,
            ("won_deals", "lost_deals"),
            "Won / closed deals, by count",
        ),
        Metric(
            "win_rate_value",
            "ratio",
            True,
            False,
            ("won_revenue", "closed_value"),
            "Won / closed deals, by value",
        ),
        Metric(
            "avg_deal_size",
            "currency",
            True,
            False,
            ("won_revenue", "won_deals"),
            "Mean amount of won deals",
        ),
        Metric(
            "sales_cycle_days",
            "days",
            False,
            False,
            ("won_deals",),
            "Median days from created to won",
        ),
        Metric(
            "sales_velocity",
            "currency_per_day",
            True,
            False,
            ("opportunities", "win_rate", "avg_deal_size", "sales_cycle_days"),
            "Opportunities x win rate x deal size / cycle days",
        ),
    )
}
ADDITIVE_METRICS = tuple(name for name, m in METRICS.items() if m.additive)
ACTIVITY_METRIC_OF_TYPE = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
}
COUNT_COLUMNS = (
    "won_deals",
    "lost_deals",
    "closed_deals",
    "opportunities",
    "activities",
    "calls",
    "emails",
    "meetings",
    "tasks",
)
VALUE_COLUMNS = ("won_revenue", "closed_value", "pipeline_created")
METRIC_COLUMNS = (
    *VALUE_COLUMNS,
    *COUNT_COLUMNS,
    "win_rate",
    "win_rate_value",
    "avg_deal_size",
    "sales_cycle_days",
    "sales_velocity",
)
_DAY_NS = 86_400 * 10**9
ADDITIVE_COLUMNS = (*VALUE_COLUMNS, *COUNT_COLUMNS)
# One slot per activity type counted on its own, and a last one for any other (or no) type.
_TYPE_SLOT = {t: i for i, t in enumerate(ACTIVITY_METRIC_OF_TYPE)}
_OTHER_TYPE = len(_TYPE_SLOT)
# A (subject x period) grid up to this size is aggregated densely (np.bincount); larger ones
# (many subjects over many weeks, say) are first compacted to the cells that occur.
_DENSE_CELLS = 1 << 21
_ROLLUP_KINDS = ("month", "quarter", "year")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class UnknownCurrencyError(ValueError):
    pass


def _rate_lookup(
    currency: pd.Series, rates: Mapping[str, float]
) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """(code per row, rate per code); a missing currency has code -1. Currencies are
    upper-cased once per distinct value, not once per row."""
    if isinstance(currency.dtype, pd.CategoricalDtype):
        codes = currency.cat.codes.to_numpy().astype(np.intp)
        uniques = list(currency.cat.categories)
    else:
        factorized, found = pd.factorize(currency)
        codes = np.asarray(factorized, dtype=np.intp)
        uniques = list(found)
    table = np.array([rates.get(str(u).upper(), np.nan) for u in uniques], dtype="float64")
    return codes, table


def _reporting_values(
    amount: pd.Series,
    currency: pd.Series,
    rates: Mapping[str, float],
    rows: npt.NDArray[np.intp] | None = None,
) -> FloatArray:
    """amount × rate(currency) of the rows at positions ``rows`` (every row when None)."""
    codes, table = _rate_lookup(currency, rates)
    values = amount.to_numpy(dtype="float64", na_value=np.nan)
    if rows is not None:
        codes, values = codes[rows], values[rows]
    # A trailing NaN: code -1 (no currency) looks it up.
    rate = np.append(table, np.nan)[codes]
    missing = np.isnan(rate) & ~np.isnan(values)
    if missing.any():
        shown = currency if rows is None else currency.iloc[rows]
        bad = sorted({str(c) for c in shown[missing]})
        raise UnknownCurrencyError(f"no conversion rate for currency {', '.join(bad)}")
    out: FloatArray = values * rate
    return out


def to_reporting_currency(
    amount: pd.Series, currency: pd.Series, rates: Mapping[str, float]
) -> pd.Series:
    """amount × rates[currency]; an unknown currency is an error, not a silent zero."""
    return pd.Series(_reporting_values(amount, currency, rates), index=amount.index)


def _local(ts: pd.Series, tz: str) -> pd.Series:
    """Timestamps as wall-clock time in the reporting timezone (period boundaries are local)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        local: pd.Series = ts.dt.tz_convert(tz)
        return local
    return ts


def _wall_ns(ts: pd.Series) -> npt.NDArray[np.datetime64]:
    """Wall-clock values (of a :func:`_local` column) as naive ``datetime64[ns]``."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize(None)
    out: npt.NDArray[np.datetime64] = ts.to_numpy(dtype="datetime64[ns]")
    return out


# Up to this many days between the first and the last date, periods are looked up per day.
_DAY_TABLE = 1 << 20


def _period_index(dates: pd.Series, kind: str, cal: FiscalCalendar) -> IntArray:
    """:func:`analytics.periods.period_index` (wall-clock date of each value), computed once
    per distinct day of the range rather than per value: records span a few hundred days."""
    series = dates if pd.api.types.is_datetime64_any_dtype(dates.dtype) else pd.to_datetime(dates)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)
    days = series.to_numpy().astype("datetime64[D]")
    missing = np.isnat(days)
    numbers = days.view(np.int64)
    valid = numbers[~missing] if missing.any() else numbers
    if not len(valid):
        return np.full(len(numbers), MISSING_INDEX, dtype=np.int64)
    lo, hi = int(valid.min()), int(valid.max())
    if hi - lo >= _DAY_TABLE:
        return period_index(dates, kind, cal)
    span = pd.Series(np.arange(lo, hi + 1, dtype=np.int64).view("datetime64[D]"))
    table = period_index(span, kind, cal)
    out: IntArray = table[np.where(missing, 0, numbers - lo)]
    out[missing] = MISSING_INDEX
    return out


def _rows(series: pd.Series, rows: npt.NDArray[np.intp] | None) -> pd.Series:
    """The values at positions ``rows`` (the column itself, not a copy, when None)."""
    return series if rows is None else series.iloc[rows]


def _cycle_days(deals: pd.DataFrame, rows: npt.NDArray[np.intp] | None, tz: str) -> FloatArray:
    """(closed_at, else close_date) − created_at in days, in the reporting timezone's wall
    clock (``close_date`` is a local date), NaN when either end is missing."""
    start = _wall_ns(_local(_rows(deals["created_at"], rows), tz))
    end = _wall_ns(pd.Series(pd.to_datetime(_rows(deals["close_date"], rows))))
    if "closed_at" in deals:
        closed = _wall_ns(_local(_rows(deals["closed_at"], rows), tz))
        end = np.where(np.isnat(closed), end, closed)
    cycle = end - start
    days = cycle.astype(np.int64) / _DAY_NS
    out: FloatArray = np.where(np.isnat(cycle), np.nan, days)
    return out


def _live_rows(frame: pd.DataFrame) -> npt.NDArray[np.intp] | None:
    """Positions of the rows not deleted (None: every row, so nothing needs copying)."""
    deleted = frame["is_deleted"].to_numpy(dtype=bool)
    return np.flatnonzero(~deleted) if deleted.any() else None


def _count(rows: npt.NDArray[np.intp] | None, frame: pd.DataFrame) -> int:
    return len(frame) if rows is None else len(rows)


def _take(values: npt.NDArray[Any], rows: npt.NDArray[np.intp] | None) -> npt.NDArray[Any]:
    return values if rows is None else values[rows]


def _type_slots(types: pd.Series) -> IntArray:
    """Slot of each activity type in :data:`ACTIVITY_METRIC_OF_TYPE` (:data:`_OTHER_TYPE` for
    any other or no type), looked up once per distinct type (categorical or factorized)."""
    if isinstance(types.dtype, pd.CategoricalDtype):
        codes = types.cat.codes.to_numpy()
        uniques = list(types.cat.categories)
    else:
        codes, found = pd.factorize(types)
        uniques = list(found)
    # A trailing "other" slot: code -1 (no type) looks it up.
    table = np.array([*(_TYPE_SLOT.get(u, _OTHER_TYPE) for u in uniques), _OTHER_TYPE])
    out: IntArray = table.astype(np.int64)[codes]
    return out


def _group_median(cells: IntArray, values: FloatArray, size: int) -> FloatArray:
    """Median of ``values`` per cell ``0..size-1`` (NaN values skipped; NaN for a cell with
    none): the middle value, or the mean of the two middle ones, as pandas' group median."""
    ok = ~np.isnan(values)
    cells, values = cells[ok], values[ok]
    order = np.lexsort((values, cells))
    ordered = values[order]
    counts = np.bincount(cells, minlength=size)
    starts = np.cumsum(counts) - counts
    out = np.full(size, np.nan)
    has = counts > 0
    n = counts[has]
    lo = ordered[starts[has] + (n - 1) // 2]
    hi = ordered[starts[has] + n // 2]
    out[has] = (hi + lo) / 2
    return out


class _Grid:
    """Cells (subject, period) shared by every source of one :func:`period_metrics` call.

    Subjects are coded densely (an integer key's offset from its minimum when the range is
    small, else factorized), periods by their offset from the first period; a cell is
    ``subject * periods + period``. Sparse grids are compacted to the cells that occur.
    """

    def __init__(self, keys: list[pd.Series], periods: list[IntArray]) -> None:
        valid = [p[p != MISSING_INDEX] for p in periods]
        nonempty = [v for v in valid if len(v)]
        self.first = int(min(v.min() for v in nonempty)) if nonempty else 0
        last = int(max(v.max() for v in nonempty)) if nonempty else -1
        self.periods = last - self.first + 1
        self.key_codes, self.uniques = self._code_keys(keys)
        self.cells: list[IntArray] = []
        for codes, period in zip(self.key_codes, periods, strict=True):
            cell = codes * self.periods + (period - self.first)
            cell[(codes < 0) | (period == MISSING_INDEX)] = -1
            self.cells.append(cell)
        self.size = len(self.uniques) * max(self.periods, 0)
        self.compact: IntArray | None = None
        if self.size > _DENSE_CELLS:
            flat = np.concatenate([c[c >= 0] for c in self.cells])
            self.compact, inverse = np.unique(flat, return_inverse=True)
            self.size = len(self.compact)
            parts = np.split(inverse, np.cumsum([int((c >= 0).sum()) for c in self.cells])[:-1])
            for cell, part in zip(self.cells, parts, strict=True):
                cell[cell >= 0] = part

    @staticmethod
    def _code_keys(keys: list[pd.Series]) -> tuple[list[IntArray], Any]:
        arrays = [k.to_numpy() for k in keys]
        total = sum(len(a) for a in arrays)
        if all(a.dtype.kind in "iu" for a in arrays) and total:
            lo = min(int(a.min()) for a in arrays if len(a))
            hi = max(int(a.max()) for a in arrays if len(a))
            if hi - lo < max(total, 1 << 16):
                dtype = np.result_type(*(a.dtype for a in arrays))
                return [a.astype(np.int64) - lo for a in arrays], np.arange(lo, hi + 1, dtype=dtype)
        combined = pd.concat(keys, ignore_index=True) if keys else pd.Series([], dtype=object)
        codes, uniques = pd.factorize(combined)
        bounds = np.cumsum([len(a) for a in arrays])[:-1]
        return [np.asarray(c, dtype=np.int64) for c in np.split(codes, bounds)], uniques

    def count(self, source: int, mask: BoolArray | None = None) -> IntArray:
        cell = self.cells[source]
        keep = cell >= 0 if mask is None else (cell >= 0) & mask
        out: IntArray = np.bincount(cell[keep], minlength=self.size).astype(np.int64)
        return out

    def total(self, source: int, weights: FloatArray) -> FloatArray:
        cell = self.cells[source]
        keep = cell >= 0
        return cast(FloatArray, np.bincount(cell[keep], weights=weights[keep], minlength=self.size))

    def frame(self, key: str, present: BoolArray, columns: dict[str, npt.NDArray[Any]]) -> Any:
        at = np.flatnonzero(present)
        cell = at if self.compact is None else self.compact[at]
        subject, period = np.divmod(cell, self.periods) if self.periods > 0 else (cell, cell)
        keys = self.uniques.take(subject) if len(subject) else self.uniques[:0]
        return pd.DataFrame(
            {
                key: keys,
                "period_index": (period + self.first).astype(np.int64),
                **{name: values[at] for name, values in columns.items()},
            }
        )


def period_metrics(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
    tz: str = "UTC",
    key: str = "rep_id",
) -> pd.DataFrame:
    """One row per (``key``, period) with data, and every metric of the module docstring.

    ``key`` is the grouping column present on both frames: ``rep_id``, or a ``team_id`` that a
    caller added (one row per record and team it rolls up to) to get pooled team figures
    (:func:`rollup_metrics` gets the same from the per-rep rows without duplicating records).
    Columns: ``key, period, period_index`` then :data:`METRIC_COLUMNS`.

    Vectorised: records are never copied (index positions of the live rows), codes
    (currency, status, activity type) are looked up once per distinct value (categorical
    columns as they come), and every aggregate is one ``np.bincount`` over (subject, period)
    cells.
    """
    live = _live_rows(deals)
    n_live = _count(live, deals)
    acts = _live_rows(activities)
    n_acts = _count(acts, activities)
    if not n_live and not n_acts:
        empty = pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=[key, "period_index"]))
        return _finish(empty.reset_index(), key, kind)

    keys: list[pd.Series] = []
    periods: list[IntArray] = []
    if n_live:
        status = _rows(deals["status"], live)
        won = status.eq("won").to_numpy(dtype=bool, na_value=False)
        lost = status.eq("lost").to_numpy(dtype=bool, na_value=False)
        closed_idx = _period_index(_rows(deals["close_date"], live), kind, cal)
        closed_idx = np.where(won | lost, closed_idx, MISSING_INDEX)
        created_idx = _period_index(_local(_rows(deals["created_at"], live), tz), kind, cal)
        deal_keys = _rows(deals[key], live)
        keys += [deal_keys, deal_keys]
        periods += [closed_idx, created_idx]
    if n_acts:
        idx = _period_index(_local(_rows(activities["occurred_at"], acts), tz), kind, cal)
        keys.append(_rows(activities[key], acts))
        periods.append(idx)
    grid = _Grid(keys, periods)

    columns: dict[str, npt.NDArray[Any]] = {}
    present = np.zeros(grid.size, dtype=bool)
    if n_live:
        value = _reporting_values(deals["amount"], deals["currency"], rates, live)
        value = np.where(np.isnan(value), 0.0, value)
        closed_rows = grid.count(0)
        present |= closed_rows > 0
        columns["won_revenue"] = grid.total(0, np.where(won, value, 0.0))
        columns["closed_value"] = grid.total(0, value)
        columns["won_deals"] = grid.count(0, won)
        columns["lost_deals"] = grid.count(0, lost)
        won_at = np.flatnonzero(won & (grid.cells[0] >= 0))
        live_won = won_at if live is None else live[won_at]
        columns["sales_cycle_days"] = _group_median(
            grid.cells[0][won_at], _cycle_days(deals, live_won, tz), grid.size
        )
        columns["opportunities"] = grid.count(1)
        columns["pipeline_created"] = grid.total(1, value)
        present |= columns["opportunities"] > 0
    if n_acts:
        source = len(periods) - 1
        cell = grid.cells[source]
        keep = cell >= 0
        slots = _type_slots(activities["type"])
        slot = _take(slots, acts)[keep]
        by_type = np.bincount(
            cell[keep] * (_OTHER_TYPE + 1) + slot, minlength=grid.size * (_OTHER_TYPE + 1)
        ).reshape(grid.size, _OTHER_TYPE + 1)
        # A cell with only other-type activities gets no activity figures (and no row of its
        # own), as a type pivot would; "activities" counts every type of a cell that has one.
        typed = by_type[:, :_OTHER_TYPE].sum(axis=1) > 0
        present |= typed
        columns["activities"] = np.where(typed, by_type.sum(axis=1), 0).astype(np.int64)
        for i, name in enumerate(ACTIVITY_METRIC_OF_TYPE.values()):
            columns[name] = by_type[:, i].astype(np.int64)
    return _finish(grid.frame(key, present, columns), key, kind)


def finish_ratios(out: pd.DataFrame) -> pd.DataFrame:
    """Derive, in place, the columns that are not sums (and return ``out``):

    * ``closed_deals``   = won_deals + lost_deals
    * ``win_rate``       = won_deals / closed_deals        (NaN when closed_deals = 0)
    * ``win_rate_value`` = won_revenue / closed_value      (NaN when closed_value <= 0)
    * ``avg_deal_size``  = won_revenue / won_deals         (NaN when won_deals = 0)
    * ``sales_velocity`` = opportunities × win_rate × avg_deal_size / sales_cycle_days
      (NaN when sales_cycle_days is NaN or <= 0)

    ``sales_cycle_days`` is a median, not derivable from sums: it must be present.
    """
    out["closed_deals"] = out["won_deals"] + out["lost_deals"]
    # Ratios of nothing are undefined (NaN), never 0: a rep with no closed deals has no win rate.
    out["win_rate"] = out["won_deals"] / out["closed_deals"].where(out["closed_deals"] > 0)
    out["win_rate_value"] = out["won_revenue"] / out["closed_value"].where(out["closed_value"] > 0)
    out["avg_deal_size"] = out["won_revenue"] / out["won_deals"].where(out["won_deals"] > 0)
    out["sales_velocity"] = (
        out["opportunities"]
        * out["win_rate"]
        * out["avg_deal_size"]
        / out["sales_cycle_days"].where(out["sales_cycle_days"] > 0)
    )
    return out


def _finish(out: pd.DataFrame, key: str, kind: str) -> pd.DataFrame:
    for col in (*COUNT_COLUMNS, *VALUE_COLUMNS):
        if col not in out:
            out[col] = 0
    counts = [c for c in COUNT_COLUMNS if c != "closed_deals"]
    filled = out[counts].fillna(0)
    # Whole numbers but where a team's month is split by days (a rep moved inside it).
    whole = bool((filled.to_numpy(dtype="float64") % 1 == 0).all())
    out[counts] = filled.astype("int64" if whole else "float64")
    out[list(VALUE_COLUMNS)] = out[list(VALUE_COLUMNS)].fillna(0.0).astype("float64")
    if "sales_cycle_days" not in out:
        out["sales_cycle_days"] = np.nan
    finish_ratios(out)
    labels = {i: index_label(kind, i) for i in pd.unique(out["period_index"])}
    out.insert(1, "period", out["period_index"].map(labels).astype("object"))
    out = out[[key, "period", "period_index", *METRIC_COLUMNS]]
    return out.sort_values([key, "period_index"], ignore_index=True)


# ------------------------------------------------------------------------------ roll-ups


def month_to_period(
    month_index: npt.ArrayLike, kind: str, cal: FiscalCalendar = FiscalCalendar()
) -> IntArray:
    """Index of the ``kind`` (month, quarter or year) period containing each fiscal month.

    Fiscal quarters and years are unions of whole fiscal months in both calendar kinds, so
    a record's quarter is the quarter of its month: month index m maps to the period that
    contains the month's first day.
    """
    if kind not in _ROLLUP_KINDS:
        raise ValueError(f"months roll up to {_ROLLUP_KINDS}, not {kind!r}")
    months = np.asarray(month_index, dtype=np.int64)
    if kind == "month" or not len(months):
        return months.copy()
    # A lookup table over the span of months (a few dozen), rather than a sort of the rows.
    first, last = int(months.min()), int(months.max())
    if last - first > 1200:
        distinct, inverse = np.unique(months, return_inverse=True)
    else:
        distinct, inverse = np.arange(first, last + 1), months - first
    starts = pd.Series(
        pd.to_datetime([period_from_index("month", int(m), cal).start for m in distinct])
    )
    out: IntArray = period_index(starts, kind, cal)[inverse]
    return out


def won_cycles(
    deals: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    tz: str = "UTC",
    key: str = "rep_id",
) -> pd.DataFrame:
    """The deal-level input of ``sales_cycle_days``: one row per live won deal whose
    ``close_date`` is in a period, ``key, period_index, cycle_days`` with
    cycle_days = (closed_at, else close_date) − created_at in days (reporting timezone);
    first a ``deal_id`` column too when ``deals`` has one."""
    live = _live_rows(deals)
    won = _rows(deals["status"], live).eq("won").to_numpy(dtype=bool, na_value=False)
    idx = _period_index(_rows(deals["close_date"], live), kind, cal)
    picked = np.flatnonzero(won & (idx != MISSING_INDEX))
    rows = picked if live is None else live[picked]
    ids = {"deal_id": deals["deal_id"].to_numpy()[rows]} if "deal_id" in deals else {}
    return pd.DataFrame(
        {
            **ids,
            key: deals[key].to_numpy()[rows],
            "period_index": idx[picked].astype(np.int64),
            "cycle_days": _cycle_days(deals, rows, tz),
        }
    )


def cycle_medians(won: pd.DataFrame, *, key: str = "rep_id") -> pd.DataFrame:
    """``sales_cycle_days`` per (``key``, period) of a :func:`won_cycles` frame (possibly
    re-keyed or re-periodised): median of cycle_days over the group's deals, NaN skipped.
    Columns: ``key, period_index, sales_cycle_days``."""
    grouped = won.groupby([key, "period_index"], sort=True)["cycle_days"].median()
    return grouped.rename("sales_cycle_days").reset_index()


def _sum_rows(rows: pd.DataFrame, key: str, kind: str, cycles: pd.DataFrame | None) -> pd.DataFrame:
    """Σ of the additive columns per (key, period_index), medians joined, ratios derived."""
    sums = rows.groupby([key, "period_index"], sort=True)[list(ADDITIVE_COLUMNS)].sum()
    out = sums.reset_index()
    if cycles is not None and len(out):
        out = out.merge(
            cycles[[key, "period_index", "sales_cycle_days"]],
            on=[key, "period_index"],
            how="left",
        )
    return _finish(out, key, kind)


def rollup_metrics(
    metrics: pd.DataFrame,
    mapping: pd.DataFrame,
    *,
    kind: str,
    key: str = "rep_id",
    to_key: str = "team_id",
    cycles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pooled figures of groups of subjects (teams of reps) from the subjects' own rows.

    ``metrics`` is a :func:`period_metrics` frame keyed by ``key``; ``mapping`` has one row
    per (``key``, ``to_key``) pair (a rep may count for several teams: its own and every team
    above it). Per (``to_key``, period), for each additive column c (:data:`ADDITIVE_COLUMNS`):

        c(group, P) = Σ w(subject, group, P) × c(subject, P) over the subjects mapped to it

    where w is 1, or, when ``mapping`` is dated (``period_index`` and ``weight`` columns: the
    share of the period's days the subject was in the group), that share: a subject who moved
    inside a period counts for each group for its days there (so a count can be fractional).
    Then the ratios are derived from those sums as :func:`period_metrics` does
    (:func:`finish_ratios`). A median does not roll up: ``sales_cycle_days`` comes from
    ``cycles`` (:func:`cycle_medians` of the group's won deals, keyed by ``to_key``), NaN
    without. Undated, this equals :func:`period_metrics` on frames that carry one row per
    record and group, without duplicating any record. Columns as :func:`period_metrics`,
    keyed by ``to_key``.
    """
    dated = "period_index" in mapping
    on = [key, "period_index"] if dated else [key]
    pairs = mapping[[*on, to_key, *(["weight"] if dated else [])]]
    rows = metrics[[key, "period_index", *ADDITIVE_COLUMNS]].merge(pairs, on=on, how="inner")
    if dated:
        weight = rows.pop("weight").to_numpy(dtype="float64")
        if (weight != 1.0).any():
            rows[list(ADDITIVE_COLUMNS)] = rows[list(ADDITIVE_COLUMNS)].mul(weight, axis=0)
    return _sum_rows(rows.drop(columns=key), to_key, kind, cycles)


def rollup_periods(
    monthly: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    key: str = "rep_id",
    cycles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Quarter or year figures from a monthly :func:`period_metrics` frame.

    Per (``key``, period P of ``kind``), for each additive column c:

        c(key, P) = Σ c(key, m) over the fiscal months m of P    (:func:`month_to_period`)

    then the ratios as :func:`period_metrics` (:func:`finish_ratios`); ``sales_cycle_days``
    comes from ``cycles`` (:func:`cycle_medians` of :func:`won_cycles` mapped to ``kind``),
    NaN without. Equals ``period_metrics(kind=kind)`` on the records of ``monthly``.
    """
    rows = monthly[[key, "period_index", *ADDITIVE_COLUMNS]].copy()
    rows["period_index"] = month_to_period(rows["period_index"].to_numpy(), kind, cal)
    return _sum_rows(rows, key, kind, cycles)


# The columns of a period_metrics row that deals decide, and those activities decide.
DEAL_PART = ("won_revenue", "closed_value", "pipeline_created", *COUNT_COLUMNS[:4])
ACTIVITY_PART = COUNT_COLUMNS[4:]


def patch_metrics(
    base: pd.DataFrame,
    *,
    deals: pd.DataFrame,
    deals_stale: npt.ArrayLike,
    activities: pd.DataFrame,
    activities_stale: npt.ArrayLike,
    kind: str,
    key: str = "rep_id",
) -> pd.DataFrame:
    """A :func:`period_metrics` frame with some cells' deal or activity figures replaced.

    ``base`` is a :func:`period_metrics` frame (stored figures); ``deals_stale`` and
    ``activities_stale`` flag its rows (cells) whose deal figures (:data:`DEAL_PART` and
    ``sales_cycle_days``), or activity figures (:data:`ACTIVITY_PART`), are out of date.
    ``deals`` and ``activities`` are :func:`period_metrics` frames of exactly the stale cells
    (of deals only and of activities only: a stale cell without a row there has none of
    those records now). Per cell (``key``, period):

        deal figures     = deals' row if the cell's deal figures are stale, else base's
        activity figures = activities' row if stale, else base's

    then the ratios as :func:`period_metrics` (:func:`finish_ratios`). A cell keeps a row
    when it has closed deals, opportunities or activities, as in :func:`period_metrics`.
    Equals ``period_metrics`` on the records when the fresh frames and the kept base figures
    are those of the records.
    """
    cell = [key, "period_index"]
    deal_stale = np.asarray(deals_stale, dtype=bool)
    activity_stale = np.asarray(activities_stale, dtype=bool)
    deal_rows = pd.concat(
        [
            base.loc[~deal_stale, [*cell, *DEAL_PART, "sales_cycle_days"]],
            deals[[*cell, *DEAL_PART, "sales_cycle_days"]],
        ],
        ignore_index=True,
    )
    activity_rows = pd.concat(
        [base.loc[~activity_stale, [*cell, *ACTIVITY_PART]], activities[[*cell, *ACTIVITY_PART]]],
        ignore_index=True,
    )
    rows = pd.concat(
        [deal_rows.drop(columns="sales_cycle_days"), activity_rows], ignore_index=True
    ).fillna({c: 0 for c in ADDITIVE_COLUMNS})
    for col in ADDITIVE_COLUMNS:
        if col not in rows:
            rows[col] = 0
    out = _sum_rows(rows, key, kind, deal_rows[[*cell, "sales_cycle_days"]])
    present = (out["closed_deals"] + out["opportunities"] + out["activities"]) > 0
    return out[present.to_numpy()].reset_index(drop=True)


def shift_metrics(
    base: pd.DataFrame,
    *,
    added: pd.DataFrame,
    removed: pd.DataFrame,
    cycles: pd.DataFrame,
    kind: str,
    key: str = "rep_id",
) -> pd.DataFrame:
    """A :func:`period_metrics` frame after some records changed, without its other records.

    ``added`` and ``removed`` are :func:`period_metrics` frames of the changed records as
    they are now and as ``base`` counted them. Per cell (``key``, period):

        additive figures = base + added − removed
        sales_cycle_days = ``cycles``' figure for a cell of ``added`` or ``removed`` (a
                           median does not shift: the caller takes it from the won deals
                           the cell has now; NaN when it has none), else base's

    A sum is exactly 0 once nothing it counts is left (no drift from adding and taking back
    the same amounts); then the ratios as :func:`period_metrics` (:func:`finish_ratios`),
    and a cell keeps a row while it has closed deals, opportunities or activities. Equals
    ``period_metrics`` on the records, up to float rounding, when ``base`` does.
    """
    cell = [key, "period_index"]
    counts = [c for c in ADDITIVE_COLUMNS if c != "closed_deals"]
    # (An empty frame's key column may be of objects: it must not make the keys objects.)
    changes = [f for f in (added, removed) if len(f)]
    if not changes:
        return base
    touched = pd.concat([f[cell] for f in changes], ignore_index=True).drop_duplicates()
    # Only the touched cells are summed again; the others pass through as they are.
    hit = pd.MultiIndex.from_frame(base[cell]).isin(pd.MultiIndex.from_frame(touched))
    parts = [
        base.loc[hit, [*cell, *counts]],
        added[[*cell, *counts]],
        removed[[*cell, *counts]].assign(**{c: -removed[c] for c in counts}),
    ]
    signed = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out = signed.groupby(cell, sort=True)[counts].sum().reset_index()
    for value, count in (
        ("won_revenue", "won_deals"),
        ("pipeline_created", "opportunities"),
    ):
        out.loc[out[count] == 0, value] = 0.0
    out.loc[out["won_deals"] + out["lost_deals"] == 0, "closed_value"] = 0.0
    median = touched.merge(cycles[[*cell, "sales_cycle_days"]], on=cell, how="left")
    out = _finish(out.merge(median, on=cell, how="left"), key, kind)
    present = (out["closed_deals"] + out["opportunities"] + out["activities"]) > 0
    merged = pd.concat([base[~hit], out[present.to_numpy()]], ignore_index=True)
    return merged.sort_values(cell, ignore_index=True)


def additive_actuals(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
    tz: str = "UTC",
) -> pd.DataFrame:
    """Long frame ``rep_id, period, metric, value`` of the additive metrics."""
    wide = period_metrics(deals, activities, kind=kind, cal=cal, rates=rates, tz=tz)
    long = wide.melt(
        id_vars=["rep_id", "period"], value_vars=list(ADDITIVE_METRICS), var_name="metric"
    )
    long["value"] = long["value"].astype("float64")
    return long.sort_values(["rep_id", "period", "metric"], ignore_index=True)
