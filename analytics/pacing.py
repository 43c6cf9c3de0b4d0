"""Pacing: the share of a period's target a subject should have reached by ``as_of``.

:func:`elapsed_shares` implements the three ``GapConfig.pacing`` modes of
:mod:`analytics.gaps` (formulas in its module docstring); :func:`seasonal_shares` learns the
curves the seasonal mode follows.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import (
    BoolArray,
    FloatArray,
    IntArray,
    ObjArray,
    as_int64,
    epoch_day,
    epoch_days,
    floats,
)
from analytics.periods import FiscalCalendar, period_from_index, period_index

__all__ = [
    "PACINGS",
    "Pacing",
    "curve_values",
    "elapsed_shares",
    "seasonal_shares",
    "working_days",
]

Pacing = Literal["linear", "working_days", "seasonal"]
PACINGS: Final[tuple[str, ...]] = ("linear", "working_days", "seasonal")

_SUBJECT: Final[list[str]] = ["subject_type", "subject_id"]


def elapsed_shares(
    *,
    pacing: str,
    as_of: int,
    start: IntArray,
    end: IntArray,
    pace_start: IntArray,
    additive: BoolArray,
    holidays: tuple[date, ...],
    shares: pd.DataFrame | None,
    keys: pd.DataFrame,
) -> tuple[FloatArray, ObjArray]:
    """(elapsed share, pacing mode) of each target at day ``as_of`` (``elapsed_fraction`` and
    ``pacing`` of :func:`analytics.gaps.compute_gaps`).

    * calendar-day share = clip(as_of − start + 1, 0, N) / N over the period's N days
    * ``linear``: clip(as_of − pace_start + 1, 0, n) / n over the n days from ``pace_start``
    * ``working_days``: business days of [pace_start, as_of] / those of [pace_start, end]
      (``linear`` when the period has none)
    * ``seasonal``: the subject's curve (:func:`curve_values`) at x = clip(as_of − start + 1,
      1, N) / N, 0 before the period and 1 after it (``linear`` without a curve)

    A non-additive metric (a level) gets the calendar-day share and the mode "level".
    """
    ndays = end - start + 1
    pace_days = end - pace_start + 1
    started = as_of >= start
    ended = as_of > end
    linear = np.clip(as_of - start + 1, 0, ndays) / ndays
    share = np.clip(as_of - pace_start + 1, 0, pace_days) / pace_days
    mode = np.full(len(start), "linear", dtype=object)
    if pacing == "working_days":
        hols = np.array(holidays, dtype="datetime64[D]")
        d_start = pace_start.astype("datetime64[D]")
        total = np.busday_count(d_start, (end + 1).astype("datetime64[D]"), holidays=hols)
        done = np.busday_count(
            d_start,
            np.clip(as_of + 1, pace_start, end + 1).astype("datetime64[D]"),
            holidays=hols,
        )
        has_workdays = total > 0
        share = np.where(has_workdays, done / np.maximum(total, 1), share)
        mode = np.where(has_workdays, "working_days", "linear").astype(object)
    elif pacing == "seasonal" and shares is not None:
        x = np.clip(as_of - start + 1, 1, ndays) / ndays
        found, curve = curve_values(shares, keys, x)
        curve = np.where(started, np.where(ended, 1.0, curve), 0.0)
        share = np.where(found, curve, linear)
        mode = np.where(found, "seasonal", "linear").astype(object)
    elapsed = np.where(additive, share, linear)
    mode = np.where(additive, mode, "level").astype(object)
    return elapsed, mode


def working_days(
    first: npt.NDArray[np.datetime64],
    stop: npt.NDArray[np.datetime64],
    *,
    holidays: tuple[date, ...],
) -> IntArray:
    """Working days in [first, stop): Mon-Fri days minus ``holidays``, as the
    ``working_days`` pacing counts them (0 where stop <= first)."""
    hols = np.array(holidays, dtype="datetime64[D]")
    first_days = first.astype("datetime64[D]")
    stop_days = np.maximum(stop.astype("datetime64[D]"), first_days)
    out: IntArray = np.busday_count(first_days, stop_days, holidays=hols).astype(np.int64)
    return out


def _bookings(
    won: pd.DataFrame, *, kind: str, cal: FiscalCalendar, as_of: date, key: str, lookback: int
) -> tuple[pd.DataFrame, IntArray]:
    """Each booking of the window's periods as ``key, slot, offset, value`` (slot: the
    period's position in the window, offset: day index d in it), and the periods' lengths."""
    current = int(period_index(pd.Series([pd.Timestamp(as_of)]), kind, cal)[0])
    window = [period_from_index(kind, i, cal) for i in range(current - lookback, current)]
    starts = np.array([epoch_day(p.start) for p in window], dtype=np.int64)
    lengths = np.array([p.days for p in window], dtype=np.int64)

    days, missing = epoch_days(won["close_date"])
    idx = period_index(won["close_date"], kind, cal)
    keep = (
        ~missing
        & (idx >= current - lookback)
        & (idx < current)
        & won[key].notna().to_numpy(dtype=bool)
    )
    slot = idx[keep] - (current - lookback)
    frame = pd.DataFrame(
        {
            key: won[key].to_numpy()[keep],
            "slot": slot,
            "offset": days[keep] - starts[slot],
            "value": np.nan_to_num(floats(won["value"])[keep], nan=0.0),
        }
    )
    return frame, lengths


def _usable_totals(frame: pd.DataFrame, key: str) -> pd.Series:
    """Σ value per (key, slot) of the periods with bookings, of keys with 2 or more."""
    totals = frame.groupby([key, "slot"], sort=True)["value"].sum()
    totals = totals[totals > 0]
    usable = totals.groupby(level=0).size()
    return totals[totals.index.get_level_values(0).isin(usable.index[usable >= 2])]


def _cumulative(
    frame: pd.DataFrame, totals: pd.Series, key: str, curve_len: IntArray
) -> tuple[FloatArray, int]:
    """cumulative[c, j] = share of curve c's bookings closed in its first j days, and the
    matrix width (longest period + 2)."""
    width = int(curve_len.max()) + 2
    per_day = np.zeros((len(totals), width))
    curve_of = pd.Series(np.arange(len(totals)), index=totals.index)
    booked = frame.set_index([key, "slot"]).index
    hit = booked.isin(totals.index)
    rows = curve_of.reindex(booked[hit]).to_numpy(dtype=np.int64)
    np.add.at(per_day, (rows, frame["offset"].to_numpy()[hit] + 1), frame["value"].to_numpy()[hit])
    cumulative: FloatArray = np.cumsum(per_day, axis=1) / totals.to_numpy()[:, None]
    return cumulative, width


def _sampled(
    cumulative: FloatArray, curve_len: IntArray, width: int
) -> tuple[FloatArray, FloatArray]:
    """The positions j / N of every period length N used, and each curve there (linear
    interpolation between its day points)."""
    grid = np.unique(np.concatenate([np.arange(1, n + 1) / n for n in np.unique(curve_len)]))
    t = grid[None, :] * curve_len[:, None]
    j = np.clip(np.floor(t).astype(np.int64), 0, width - 2)
    frac = t - j
    left = np.take_along_axis(cumulative, j, axis=1)
    right = np.take_along_axis(cumulative, j + 1, axis=1)
    sampled: FloatArray = left + frac * (right - left)
    return grid, sampled


def seasonal_shares(
    won: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    as_of: date,
    key: str,
    lookback: int = 8,
) -> pd.DataFrame:
    """Learned pacing curve: the average share of a period's bookings closed by each point.

    ``won`` holds won, not deleted deals: ``key, close_date, value`` (value already in the
    reporting currency). For each of the ``lookback`` complete periods of ``kind`` before the
    one containing ``as_of`` with positive bookings, and day index d = 0..N−1 of its N days:

        c(d) = Σ value closed on days ≤ d / Σ value closed in the period

    placed at position x = (d + 1) / N (with c = 0 at x = 0) and linearly interpolated, so
    periods of different lengths align by relative position. The curve of a key is the mean of
    its periods' curves, sampled at every position j / N of every period length N used (which
    makes it exact at those points). Periods without bookings are skipped; a key with fewer
    than 2 usable periods gets no curve (callers fall back to linear pacing).

    Columns: ``key, period_kind, position, share, periods_used``; one row per key and position,
    positions in (0, 1] ascending.
    """
    columns = [key, "period_kind", "position", "share", "periods_used"]
    frame, lengths = _bookings(won, kind=kind, cal=cal, as_of=as_of, key=key, lookback=lookback)
    totals = _usable_totals(frame, key)
    if totals.empty:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        out[key] = won[key].iloc[:0].reset_index(drop=True)
        out["period_kind"] = pd.Series(dtype="object")
        out["periods_used"] = out["periods_used"].astype("int64")
        return out[columns]

    curve_keys = totals.index.get_level_values(0).to_numpy()
    curve_slots = totals.index.get_level_values(1).to_numpy(dtype=np.int64)
    curve_len = lengths[curve_slots]
    cumulative, width = _cumulative(frame, totals, key, curve_len)
    grid, sampled = _sampled(cumulative, curve_len, width)

    mean = pd.DataFrame(sampled).groupby(curve_keys, sort=True).mean()
    count = pd.Series(curve_keys).groupby(curve_keys, sort=True).size()
    n_keys, n_grid = mean.shape
    return pd.DataFrame(
        {
            key: np.repeat(mean.index.to_numpy(), n_grid),
            "period_kind": kind,
            "position": np.tile(grid, n_keys),
            "share": mean.to_numpy().ravel(),
            "periods_used": np.repeat(count.reindex(mean.index).to_numpy(dtype=np.int64), n_grid),
        }
    )[columns]


def curve_values(
    shares: pd.DataFrame, lookup: pd.DataFrame, x: FloatArray
) -> tuple[BoolArray, FloatArray]:
    """Each lookup row's curve (by subject and period_kind) at position x, interpolated.

    Vectorised by laying all curves on one axis: curve g occupies [4g, 4g + 1], so one
    ``searchsorted`` finds every bracket and a neighbour from another curve means "before the
    first point", where the curve is anchored at (0, 0).
    """
    cols = [*_SUBJECT, "period_kind"]
    sh = shares[[*cols, "position", "share"]].copy()
    sh["subject_id"] = as_int64(sh["subject_id"])
    ids = sh[cols].drop_duplicates().reset_index(drop=True)
    ids["gid"] = np.arange(len(ids), dtype=np.int64)
    sh = sh.merge(ids, on=cols, how="left").sort_values(["gid", "position"])
    gid = sh["gid"].to_numpy(dtype=np.int64)
    pos = floats(sh["position"])
    val = floats(sh["share"])
    axis = gid * 4.0 + pos
    target_gid = lookup[cols].merge(ids, on=cols, how="left")["gid"]
    found = target_gid.notna().to_numpy(dtype=bool)
    g = target_gid.fillna(-1).to_numpy(dtype=np.int64)
    out = np.full(len(lookup), np.nan)
    if not found.any() or len(axis) == 0:
        return np.zeros(len(lookup), dtype=bool), out
    q = g[found] * 4.0 + x[found]
    i = np.searchsorted(axis, q, side="left")
    right_i = np.minimum(i, len(axis) - 1)
    has_right = (i < len(axis)) & (gid[right_i] == g[found])
    left_i = np.maximum(i - 1, 0)
    has_left = (i > 0) & (gid[left_i] == g[found])
    x0 = np.where(has_left, pos[left_i], 0.0)
    y0 = np.where(has_left, val[left_i], 0.0)
    x1 = np.where(has_right, pos[right_i], x0)
    y1 = np.where(has_right, val[right_i], y0)
    span = x1 - x0
    w = np.divide(x[found] - x0, span, out=np.zeros(len(q)), where=span > 0)
    out[found] = y0 + np.clip(w, 0.0, 1.0) * (y1 - y0)
    return found, out
