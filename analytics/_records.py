"""Reading record frames (deals, activities) without copying them.

Deleted records are skipped by position (:func:`live_rows`), timestamps are read as wall-clock
time in the reporting timezone, and periods are looked up once per distinct day: the helpers
:mod:`analytics.metrics` and :mod:`analytics.metric_rollups` share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import FloatArray, IntArray
from analytics.periods import MISSING_INDEX, FiscalCalendar, period_index

DAY_NS = 86_400 * 10**9


def local(ts: pd.Series, tz: str) -> pd.Series:
    """Timestamps as wall-clock time in the reporting timezone (period boundaries are local)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = ts.dt.tz_convert(tz)
        return converted
    return ts


def wall_ns(ts: pd.Series) -> npt.NDArray[np.datetime64]:
    """Wall-clock values (of a :func:`local` column) as naive ``datetime64[ns]``."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize(None)
    out: npt.NDArray[np.datetime64] = ts.to_numpy(dtype="datetime64[ns]")
    return out


# Up to this many days between the first and the last date, periods are looked up per day.
DAY_TABLE = 1 << 20


def period_indices(dates: pd.Series, kind: str, cal: FiscalCalendar) -> IntArray:
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
    if hi - lo >= DAY_TABLE:
        return period_index(dates, kind, cal)
    span = pd.Series(np.arange(lo, hi + 1, dtype=np.int64).view("datetime64[D]"))
    table = period_index(span, kind, cal)
    out: IntArray = table[np.where(missing, 0, numbers - lo)]
    out[missing] = MISSING_INDEX
    return out


def rows_at(series: pd.Series, rows: npt.NDArray[np.intp] | None) -> pd.Series:
    """The values at positions ``rows`` (the column itself, not a copy, when None)."""
    return series if rows is None else series.iloc[rows]


def cycle_days(deals: pd.DataFrame, rows: npt.NDArray[np.intp] | None, tz: str) -> FloatArray:
    """(closed_at, else close_date) − created_at in days, in the reporting timezone's wall
    clock (``close_date`` is a local date), NaN when either end is missing."""
    start = wall_ns(local(rows_at(deals["created_at"], rows), tz))
    end = wall_ns(pd.Series(pd.to_datetime(rows_at(deals["close_date"], rows))))
    if "closed_at" in deals:
        closed = wall_ns(local(rows_at(deals["closed_at"], rows), tz))
        end = np.where(np.isnat(closed), end, closed)
    cycle = end - start
    days = cycle.astype(np.int64) / DAY_NS
    out: FloatArray = np.where(np.isnat(cycle), np.nan, days)
    return out


def live_rows(frame: pd.DataFrame) -> npt.NDArray[np.intp] | None:
    """Positions of the rows not deleted (None: every row, so nothing needs copying)."""
    deleted = frame["is_deleted"].to_numpy(dtype=bool)
    return np.flatnonzero(~deleted) if deleted.any() else None


def count_rows(rows: npt.NDArray[np.intp] | None, frame: pd.DataFrame) -> int:
    """How many rows ``rows`` picks (every row of ``frame`` when None)."""
    return len(frame) if rows is None else len(rows)


def take_rows(values: npt.NDArray[Any], rows: npt.NDArray[np.intp] | None) -> npt.NDArray[Any]:
    """The values at positions ``rows`` (the array itself when None)."""
    return values if rows is None else values[rows]
