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

from analytics._arrays import BoolArray, FloatArray, IntArray
from analytics._records import (
    count_rows,
    cycle_days,
    live_rows,
    local,
    period_indices,
    rows_at,
    take_rows,
)
from analytics.currency import reporting_values
from analytics.periods import MISSING_INDEX, FiscalCalendar, index_label


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
ADDITIVE_COLUMNS = (*VALUE_COLUMNS, *COUNT_COLUMNS)
# One slot per activity type counted on its own, and a last one for any other (or no) type.
_TYPE_SLOT = {t: i for i, t in enumerate(ACTIVITY_METRIC_OF_TYPE)}
_OTHER_TYPE = len(_TYPE_SLOT)
# A (subject x period) grid up to this size is aggregated densely (np.bincount); larger ones
# (many subjects over many weeks, say) are first compacted to the cells that occur.
_DENSE_CELLS = 1 << 21


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
    (:func:`analytics.metric_rollups.rollup_metrics` gets the same from the per-rep rows
    without duplicating records).
    Columns: ``key, period, period_index`` then :data:`METRIC_COLUMNS`.

    Vectorised: records are never copied (index positions of the live rows), codes
    (currency, status, activity type) are looked up once per distinct value (categorical
    columns as they come), and every aggregate is one ``np.bincount`` over (subject, period)
    cells.
    """
    live = live_rows(deals)
    n_live = count_rows(live, deals)
    acts = live_rows(activities)
    n_acts = count_rows(acts, activities)
    if not n_live and not n_acts:
        empty = pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=[key, "period_index"]))
        return finish_metrics(empty.reset_index(), key, kind)

    keys: list[pd.Series] = []
    periods: list[IntArray] = []
    if n_live:
        status = rows_at(deals["status"], live)
        won = status.eq("won").to_numpy(dtype=bool, na_value=False)
        lost = status.eq("lost").to_numpy(dtype=bool, na_value=False)
        closed_idx = period_indices(rows_at(deals["close_date"], live), kind, cal)
        closed_idx = np.where(won | lost, closed_idx, MISSING_INDEX)
        created_idx = period_indices(local(rows_at(deals["created_at"], live), tz), kind, cal)
        deal_keys = rows_at(deals[key], live)
        keys += [deal_keys, deal_keys]
        periods += [closed_idx, created_idx]
    if n_acts:
        idx = period_indices(local(rows_at(activities["occurred_at"], acts), tz), kind, cal)
        keys.append(rows_at(activities[key], acts))
        periods.append(idx)
    grid = _Grid(keys, periods)

    columns: dict[str, npt.NDArray[Any]] = {}
    present = np.zeros(grid.size, dtype=bool)
    if n_live:
        deal_columns, has_deals = _deal_columns(deals, live, won, lost, grid, rates=rates, tz=tz)
        columns.update(deal_columns)
        present |= has_deals
    if n_acts:
        activity_columns, has_activities = _activity_columns(
            activities, acts, grid, len(periods) - 1
        )
        columns.update(activity_columns)
        present |= has_activities
    return finish_metrics(grid.frame(key, present, columns), key, kind)


def _deal_columns(
    deals: pd.DataFrame,
    live: npt.NDArray[np.intp] | None,
    won: BoolArray,
    lost: BoolArray,
    grid: _Grid,
    *,
    rates: Mapping[str, float],
    tz: str,
) -> tuple[dict[str, npt.NDArray[Any]], BoolArray]:
    """The deal figures per cell (formulas in the module docstring) and the cells that have
    closed deals or opportunities. Grid source 0 holds the won and lost deals by close_date,
    source 1 every deal by created_at."""
    columns: dict[str, npt.NDArray[Any]] = {}
    value = reporting_values(deals["amount"], deals["currency"], rates, live)
    value = np.where(np.isnan(value), 0.0, value)
    closed_rows = grid.count(0)
    columns["won_revenue"] = grid.total(0, np.where(won, value, 0.0))
    columns["closed_value"] = grid.total(0, value)
    columns["won_deals"] = grid.count(0, won)
    columns["lost_deals"] = grid.count(0, lost)
    won_at = np.flatnonzero(won & (grid.cells[0] >= 0))
    live_won = won_at if live is None else live[won_at]
    columns["sales_cycle_days"] = _group_median(
        grid.cells[0][won_at], cycle_days(deals, live_won, tz), grid.size
    )
    columns["opportunities"] = grid.count(1)
    columns["pipeline_created"] = grid.total(1, value)
    present: BoolArray = (closed_rows > 0) | (columns["opportunities"] > 0)
    return columns, present


def _activity_columns(
    activities: pd.DataFrame, acts: npt.NDArray[np.intp] | None, grid: _Grid, source: int
) -> tuple[dict[str, npt.NDArray[Any]], BoolArray]:
    """``activities`` and the count of each type per cell (grid source ``source``), and the
    cells that have an activity of a counted type."""
    cell = grid.cells[source]
    keep = cell >= 0
    slots = _type_slots(activities["type"])
    slot = take_rows(slots, acts)[keep]
    by_type = np.bincount(
        cell[keep] * (_OTHER_TYPE + 1) + slot, minlength=grid.size * (_OTHER_TYPE + 1)
    ).reshape(grid.size, _OTHER_TYPE + 1)
    # A cell with only other-type activities gets no activity figures (and no row of its
    # own), as a type pivot would; "activities" counts every type of a cell that has one.
    typed: BoolArray = by_type[:, :_OTHER_TYPE].sum(axis=1) > 0
    columns: dict[str, npt.NDArray[Any]] = {
        "activities": np.where(typed, by_type.sum(axis=1), 0).astype(np.int64)
    }
    for i, name in enumerate(ACTIVITY_METRIC_OF_TYPE.values()):
        columns[name] = by_type[:, i].astype(np.int64)
    return columns, typed


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


def finish_metrics(out: pd.DataFrame, key: str, kind: str) -> pd.DataFrame:
    """A frame of summed figures per (``key``, ``period_index``) as :func:`period_metrics`
    returns it: missing sums 0 (counts whole numbers where they all are), the ratios derived
    (:func:`finish_ratios`), the ``period`` label added, columns ordered, rows sorted."""
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
