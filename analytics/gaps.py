"""Gaps against targets: how far each rep and team is from quota, and whether they will get there.

Inputs are plain frames (see :func:`compute_gaps`); everything here is pure and vectorised over
the targets table. Signs: ``gap`` > 0 is a shortfall, ``pace_gap`` > 0 is ahead of pace.

Effective target (rep targets of additive metrics only; team targets and levels get factors 1):

* ``proration_factor`` = (days from the rep's ``start_date`` to period end, inclusive) / period
  days when the rep started inside the period; 0 when they start after it; 1 otherwise.
* ``ramp_factor``: the rep's month k after starting (k = 1 is the month containing
  ``start_date``; months are the fiscal calendar's months) carries ``ramp_schedule[k-1]`` of the
  full target, 1.0 after the schedule. For a period spanning several months it is the
  day-weighted average over the rep's days in the period, so for any period
  target_full × proration × ramp = target_full × Σ(ramp of each employed day) / period days.
* ``target`` = target_full × proration_factor × ramp_factor.
* A target derived from its months (:mod:`analytics.targets`) brings its factors from them.

Elapsed share of the period at ``as_of`` (``as_of`` counts as a whole day; 0 before the period,
1 after it), by ``GapConfig.pacing``:

* ``linear``: calendar days elapsed / period days. A rep who started inside the period is
  paced over the days since their start (their prorated target is for those days too).
* ``working_days``: Mon-Fri days minus holidays elapsed / those in the period (calendar days when
  the period has none).
* ``seasonal``: the subject's learned curve from :func:`seasonal_shares` at position
  (day index + 1) / period days, linearly interpolated. Without a curve for the subject and
  period kind it falls back to ``linear``. The ``pacing`` column says which mode was used.

Additive metrics (running totals: won_revenue, won_deals, activities, ...):

* missing actual = 0
* ``expected_to_date`` = target × elapsed share
* ``projected`` = actual / elapsed share (run rate to period end; NaN while the share is 0,
  = actual once the period has ended)

Non-additive metrics (levels: win_rate, avg_deal_size, sales_cycle_days, ...): missing actual
stays NaN, ``expected_to_date`` = target, ``projected`` = actual, ``pacing`` = "level" and
``elapsed_fraction`` is the calendar-day share. A period that has not started yet has
``expected_to_date`` = 0 for every metric.

Higher is better (most metrics): ``gap`` = target − actual, ``attainment`` = actual / target,
``pace_gap`` = actual − expected_to_date. Lower is better (``sales_cycle_days``): ``gap`` =
actual − target, ``attainment`` = target / actual, ``pace_gap`` = expected_to_date − actual.
``attainment`` is NaN when its denominator is 0 (and always when the target is 0).

``status``, first rule that applies:

1. ``achieved``: the target is 0.
2. ``achieved``: additive, higher-is-better metric and actual ≥ target (a running total cannot
   fall back below it); everything else is only decided at period end.
3. ``achieved`` / ``missed``: the period has ended (as_of > period_end) and the target is /
   is not met (met = actual ≥ target, or actual ≤ target when lower is better; NaN never meets).
4. ``on_track``: the period has not started.
5. ``at_risk``: actual is NaN (a level with no data), or actual < on_track_min × expected_to_date
   (lower is better: actual × on_track_min > expected_to_date).
6. ``on_track`` otherwise.

Pipeline (only ``won_revenue`` and ``won_deals`` can be moved by open deals; other metrics get
NaN pipeline figures and ``projected_with_pipeline`` = ``projected``):

* ``open_pipeline`` / ``weighted_pipeline``: :func:`open_pipeline` amounts (won_revenue) or deal
  counts (won_deals) due in the rest of the period; 0 without a row, NaN when no pipeline frame
  was given.
* ``projected_with_pipeline`` = actual + weighted_pipeline.
* ``coverage`` = open_pipeline / (target − actual); NaN when nothing remains.
* ``coverage_needed`` = 1 / trailing win rate: by value for won_revenue, by count for won_deals;
  NaN when the win rate is unknown or 0.
* Both describe the rest of a period: NaN once it has ended (no deal can still close in it, and
  today's win rate says nothing about a past period).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.metrics import METRICS, to_reporting_currency
from analytics.periods import (
    FiscalCalendar,
    Period,
    parse_period,
    period_from_index,
    period_index,
)

__all__ = [
    "GAP_COLUMNS",
    "GapConfig",
    "Pacing",
    "compute_gaps",
    "effective_targets",
    "open_pipeline",
    "seasonal_shares",
    "trailing_win_rate",
]

Pacing = Literal["linear", "working_days", "seasonal"]
_PACINGS: Final[tuple[str, ...]] = ("linear", "working_days", "seasonal")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_EPOCH_ORDINAL: Final[int] = date(1970, 1, 1).toordinal()
_SUBJECT: Final[list[str]] = ["subject_type", "subject_id"]

# metric -> (open column, weighted column, trailing win-rate column) of the pipeline frames.
_PIPELINE_OF: Final[dict[str, tuple[str, str, str]]] = {
    "won_revenue": ("open_amount", "weighted_amount", "win_rate_value"),
    "won_deals": ("open_deals", "weighted_deals", "win_rate"),
}

GAP_COLUMNS: Final[tuple[str, ...]] = (
    "target_id",
    "subject_type",
    "rep_id",
    "team_id",
    "metric",
    "period",
    "period_kind",
    "period_start",
    "period_end",
    "target_full",
    "proration_factor",
    "ramp_factor",
    "target",
    "target_note",
    "target_derived_from",
    "actual",
    "gap",
    "attainment",
    "elapsed_fraction",
    "pacing",
    "expected_to_date",
    "pace_gap",
    "projected",
    "open_pipeline",
    "weighted_pipeline",
    "projected_with_pipeline",
    "coverage",
    "coverage_needed",
    "status",
)


@dataclass(frozen=True)
class GapConfig:
    """How gaps are judged; frozen so one config can be shared and cached."""

    as_of: date
    cal: FiscalCalendar = field(default_factory=FiscalCalendar)
    pacing: Pacing = "linear"
    holidays: tuple[date, ...] = ()
    on_track_min: float = 0.9
    ramp_schedule: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)

    def __post_init__(self) -> None:
        if self.pacing not in _PACINGS:
            raise ValueError(f"pacing must be one of {_PACINGS}, got {self.pacing!r}")
        if not self.on_track_min > 0:
            raise ValueError(f"on_track_min must be > 0, got {self.on_track_min!r}")
        if any(not r >= 0 for r in self.ramp_schedule):
            raise ValueError(f"ramp_schedule shares must be >= 0, got {self.ramp_schedule!r}")


# --------------------------------------------------------------------------- helpers


def _day(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def _epoch_days(values: pd.Series) -> tuple[IntArray, BoolArray]:
    """Days since 1970-01-01 and a missing mask; aware timestamps count by their own wall date."""
    series = pd.to_datetime(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)
    as_days = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    missing = np.isnat(as_days)
    return np.where(missing, 0, as_days.astype(np.int64)), missing


def _dates(days: IntArray) -> pd.Series:
    return pd.Series(days.astype("datetime64[D]").astype("datetime64[ns]"))


def _month_index_of_days(days: IntArray, cal: FiscalCalendar) -> IntArray:
    return period_index(_dates(days), "month", cal)


def _as_int64(values: pd.Series) -> pd.Series:
    return pd.Series(values, copy=False).astype("Int64")


def _floats(values: pd.Series) -> FloatArray:
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den, NaN where den is 0 or NaN."""
    out: FloatArray = np.full(len(num), np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out


# ---------------------------------------------------------------------- open pipeline


def open_pipeline(
    deals: pd.DataFrame,
    *,
    periods: Sequence[Period],
    as_of: date,
    rates: Mapping[str, float],
    key: str = "rep_id",
) -> pd.DataFrame:
    """Open pipeline due in the rest of each period, per (``key``, period).

    A deal counts for period P when it is open, not deleted, and its ``close_date`` is in
    [max(as_of, P.start), P.end]. Past-due open deals (close_date < as_of) never count: they
    are a CRM-hygiene finding, not pipeline. With value = amount × rate(currency) and
    probability p (0..1, NaN counts as 0):

    * ``open_amount`` = Σ value, ``weighted_amount`` = Σ value × p
    * ``open_deals`` = count, ``weighted_deals`` = Σ p

    ``deals`` needs ``key, amount, currency, status, close_date, is_deleted`` and optionally
    ``probability``. Periods may be of mixed kinds (labels are unique across kinds). Only
    (key, period) pairs with at least one deal get a row. Columns: ``key, period, open_amount,
    weighted_amount, open_deals, weighted_deals``.
    """
    columns = [key, "period", "open_amount", "weighted_amount", "open_deals", "weighted_deals"]
    live = ~deals["is_deleted"].to_numpy(dtype=bool)
    is_open = deals["status"].eq("open").to_numpy(dtype=bool, na_value=False)
    days, missing = _epoch_days(deals["close_date"])
    a = _day(as_of)
    due = live & is_open & ~missing & (days >= a) & deals[key].notna().to_numpy(dtype=bool)
    cand = deals[due]
    value = _floats(to_reporting_currency(cand["amount"], cand["currency"], rates).fillna(0.0))
    if "probability" in cand:
        prob = np.nan_to_num(_floats(cand["probability"]), nan=0.0)
    else:
        prob = np.zeros(len(cand))
    cand_days = days[due]
    order = np.argsort(cand_days, kind="stable")
    sorted_days = cand_days[order]

    # One binary search per period on the sorted close dates instead of a mask per period.
    picks: list[IntArray] = []
    labels: list[str] = []
    for p in dict.fromkeys(periods):
        lo = np.searchsorted(sorted_days, max(a, _day(p.start)), side="left")
        hi = np.searchsorted(sorted_days, _day(p.end), side="right")
        if hi > lo:
            picks.append(order[lo:hi])
            labels.append(p.label)
    if not picks:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        empty[key] = cand[key].iloc[:0].reset_index(drop=True)
        empty["period"] = pd.Series(dtype="object")
        empty["open_deals"] = empty["open_deals"].astype("int64")
        return empty[columns]
    rows = np.concatenate(picks)
    frame = pd.DataFrame(
        {
            key: cand[key].to_numpy()[rows],
            "period": np.repeat(np.array(labels, dtype=object), [len(x) for x in picks]),
            "position": np.repeat(np.arange(len(picks)), [len(x) for x in picks]),
            "open_amount": value[rows],
            "weighted_amount": value[rows] * prob[rows],
            "open_deals": np.ones(len(rows), dtype=np.int64),
            "weighted_deals": prob[rows],
        }
    )
    out = frame.groupby([key, "position", "period"], sort=True).sum().reset_index()
    return out[columns]


# -------------------------------------------------------------------- trailing win rate


def _month_indices(labels: pd.Series) -> IntArray:
    """Month index (year × 12 + month − 1) of each month label; any other kind is an error."""
    codes, uniques = pd.factorize(labels)
    table = np.empty(len(uniques), dtype=np.int64)
    for i, label in enumerate(uniques):
        p = parse_period(str(label))
        if p.kind != "month":
            raise ValueError(f"trailing_win_rate needs a monthly frame, got period {label!r}")
        table[i] = int(p.label[:4]) * 12 + int(p.label[5:7]) - 1
    if (codes < 0).any():
        raise ValueError("trailing_win_rate: the monthly frame has rows without a period")
    return table[codes] if len(codes) else np.empty(0, dtype=np.int64)


def trailing_win_rate(
    monthly: pd.DataFrame,
    *,
    as_of: date,
    months: int = 12,
    key: str = "rep_id",
    cal: FiscalCalendar = FiscalCalendar(),
) -> pd.DataFrame:
    """Win rates over the ``months`` whole months before the month containing ``as_of``.

    From a monthly :func:`analytics.metrics.period_metrics` frame, per ``key``:

    * ``win_rate_value`` = Σ won_revenue / Σ closed_value (NaN when Σ closed_value is 0)
    * ``win_rate`` = Σ won_deals / Σ closed_deals (NaN when nothing closed)

    The current, partial month is left out so a good first week does not swing the rate.
    ``cal`` decides which (4-4-5) month ``as_of`` is in. Keys without rows in the window get no
    row. Columns: ``key, won_revenue, closed_value, won_deals, closed_deals, win_rate_value,
    win_rate``.
    """
    current = int(period_index(pd.Series([pd.Timestamp(as_of)]), "month", cal)[0])
    idx = _month_indices(monthly["period"])
    window = monthly[(idx >= current - months) & (idx < current)]
    sums = window.groupby(key, sort=True)[
        ["won_revenue", "closed_value", "won_deals", "closed_deals"]
    ].sum()
    sums[["won_revenue", "closed_value"]] = sums[["won_revenue", "closed_value"]].astype("float64")
    sums[["won_deals", "closed_deals"]] = sums[["won_deals", "closed_deals"]].astype("int64")
    sums["win_rate_value"] = sums["won_revenue"] / sums["closed_value"].where(
        sums["closed_value"] > 0
    )
    sums["win_rate"] = sums["won_deals"] / sums["closed_deals"].where(sums["closed_deals"] > 0)
    return sums.reset_index()


# ----------------------------------------------------------------------- seasonal pacing


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
    current = int(period_index(pd.Series([pd.Timestamp(as_of)]), kind, cal)[0])
    window = [period_from_index(kind, i, cal) for i in range(current - lookback, current)]
    starts = np.array([_day(p.start) for p in window], dtype=np.int64)
    lengths = np.array([p.days for p in window], dtype=np.int64)

    days, missing = _epoch_days(won["close_date"])
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
            "value": np.nan_to_num(_floats(won["value"])[keep], nan=0.0),
        }
    )
    totals = frame.groupby([key, "slot"], sort=True)["value"].sum()
    totals = totals[totals > 0]
    usable = totals.groupby(level=0).size()
    totals = totals[totals.index.get_level_values(0).isin(usable.index[usable >= 2])]
    if totals.empty:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        out[key] = won[key].iloc[:0].reset_index(drop=True)
        out["period_kind"] = pd.Series(dtype="object")
        out["periods_used"] = out["periods_used"].astype("int64")
        return out[columns]

    curve_keys = totals.index.get_level_values(0).to_numpy()
    curve_slots = totals.index.get_level_values(1).to_numpy(dtype=np.int64)
    curve_len = lengths[curve_slots]
    width = int(curve_len.max()) + 2
    # cumulative[c, j] = share of curve c's bookings closed in its first j days.
    per_day = np.zeros((len(totals), width))
    curve_of = pd.Series(np.arange(len(totals)), index=totals.index)
    booked = frame.set_index([key, "slot"]).index
    hit = booked.isin(totals.index)
    rows = curve_of.reindex(booked[hit]).to_numpy(dtype=np.int64)
    np.add.at(per_day, (rows, frame["offset"].to_numpy()[hit] + 1), frame["value"].to_numpy()[hit])
    cumulative = np.cumsum(per_day, axis=1) / totals.to_numpy()[:, None]

    grid = np.unique(np.concatenate([np.arange(1, n + 1) / n for n in np.unique(curve_len)]))
    t = grid[None, :] * curve_len[:, None]
    j = np.clip(np.floor(t).astype(np.int64), 0, width - 2)
    frac = t - j
    left = np.take_along_axis(cumulative, j, axis=1)
    right = np.take_along_axis(cumulative, j + 1, axis=1)
    sampled = left + frac * (right - left)

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


def _curve_values(
    shares: pd.DataFrame, lookup: pd.DataFrame, x: FloatArray
) -> tuple[BoolArray, FloatArray]:
    """Each lookup row's curve (by subject and period_kind) at position x, interpolated.

    Vectorised by laying all curves on one axis: curve g occupies [4g, 4g + 1], so one
    ``searchsorted`` finds every bracket and a neighbour from another curve means "before the
    first point", where the curve is anchored at (0, 0).
    """
    cols = [*_SUBJECT, "period_kind"]
    sh = shares[[*cols, "position", "share"]].copy()
    sh["subject_id"] = _as_int64(sh["subject_id"])
    ids = sh[cols].drop_duplicates().reset_index(drop=True)
    ids["gid"] = np.arange(len(ids), dtype=np.int64)
    sh = sh.merge(ids, on=cols, how="left").sort_values(["gid", "position"])
    gid = sh["gid"].to_numpy(dtype=np.int64)
    pos = _floats(sh["position"])
    val = _floats(sh["share"])
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


# -------------------------------------------------------------------------- the gaps


def _key_codes(left: pd.DataFrame, right: pd.DataFrame, on: list[str]) -> tuple[IntArray, IntArray]:
    """One integer per row of each frame for its ``on`` columns, equal exactly where the keys
    are equal (ids compared as integers, labels as text, missing equal to missing, as a merge
    compares them): integer codes, so a lookup hashes each key column once."""
    n = len(left)
    lc = np.zeros(n, dtype=np.int64)
    rc = np.zeros(len(right), dtype=np.int64)
    for c in on:
        pair = [left[c], right[c]]
        if c == "subject_id":
            pair = [_as_int64(v) for v in pair]
        else:
            pair = [v.astype("object") for v in pair]
        codes, uniques = pd.factorize(pd.concat(pair, ignore_index=True), use_na_sentinel=False)
        combined = pd.factorize(np.concatenate([lc, rc]) * max(len(uniques), 1) + codes)[0]
        lc, rc = combined[:n], combined[n:]
    return lc, rc


def _lookup(left: pd.DataFrame, right: pd.DataFrame, on: list[str], what: str) -> IntArray:
    """The position in ``right`` of each row of ``left`` by the ``on`` columns, −1 where it has
    none; duplicate keys in ``right`` are an error."""
    lc, rc = _key_codes(left, right, on)
    index = pd.Index(rc)
    if not index.is_unique:
        raise ValueError(f"{what} has more than one row for the same {', '.join(on)}")
    at: IntArray = index.get_indexer(pd.Index(lc))
    return at


def _take(values: pd.Series, at: IntArray) -> FloatArray:
    """``values`` at the positions ``at`` (−1: NaN), as floats."""
    source = _floats(values)
    out: FloatArray = np.full(len(at), np.nan)
    found = at >= 0
    out[found] = source[at[found]]
    return out


def _actual_values(actuals: pd.DataFrame, keys: pd.DataFrame) -> FloatArray:
    metric = keys["metric"].to_numpy(dtype=object)
    metrics = list(pd.unique(metric))
    absent = [m for m in metrics if m not in actuals.columns]
    if absent:
        raise ValueError(f"actuals frame has no column for metric(s) {', '.join(absent)}")
    at = _lookup(keys, actuals, [*_SUBJECT, "period"], "actuals")
    out: FloatArray = np.full(len(keys), np.nan)
    for m in metrics:
        rows = metric == m
        out[rows] = _take(actuals[m], at[rows])
    return out


def _ramp(
    first: IntArray,
    last: IntArray,
    rep_start: IntArray,
    schedule: tuple[float, ...],
    cal: FiscalCalendar,
) -> tuple[FloatArray, IntArray, IntArray]:
    """Σ ramp share over the days [first, last] of reps who started on ``rep_start``.

    Returns that sum and the ramp month numbers of ``first`` and ``last`` (1 = start month).
    Month k of employment runs from the start of fiscal month m0 + k − 1 to the day before
    month m0 + k, so the sum is a handful of interval overlaps per target.
    """
    n = len(first)
    total = np.zeros(n)
    if n == 0:
        return total, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    m0 = _month_index_of_days(rep_start, cal)
    k_first = _month_index_of_days(first, cal) - m0 + 1
    k_last = _month_index_of_days(last, cal) - m0 + 1
    steps = len(schedule)
    month_ids = m0[:, None] + np.arange(1, steps + 1)[None, :]
    # Month starts are looked up once per distinct month (4-4-5 months need the calendar).
    uniq, inverse = np.unique(month_ids, return_inverse=True)
    month_start = np.array(
        [_day(period_from_index("month", int(m), cal).start) for m in uniq], dtype=np.int64
    )
    bounds = month_start[inverse.reshape(month_ids.shape)]
    seg_lo = rep_start
    for k in range(steps):
        seg_hi = bounds[:, k] - 1
        overlap = np.clip(np.minimum(last, seg_hi) - np.maximum(first, seg_lo) + 1, 0, None)
        total += schedule[k] * overlap
        seg_lo = bounds[:, k]
    total += np.clip(last - np.maximum(first, seg_lo) + 1, 0, None)
    return total, k_first.astype(np.int64), k_last.astype(np.int64)


def _pct(values: FloatArray) -> npt.NDArray[np.str_]:
    return np.char.mod("%g", np.round(values * 100, 1))


def _factors(
    t: pd.DataFrame,
    is_rep: BoolArray,
    additive: BoolArray,
    start: IntArray,
    end: IntArray,
    ndays: IntArray,
    reps: pd.DataFrame,
    config: GapConfig,
) -> tuple[FloatArray, FloatArray, pd.Series, IntArray]:
    n = len(t)
    pace_start = start.copy()
    proration = np.ones(n)
    ramp = np.ones(n)
    note = pd.Series([""] * n, dtype="object")
    if reps["rep_id"].duplicated().any():
        raise ValueError("reps frame has more than one row for the same rep_id")
    start_of = pd.Series(
        pd.to_datetime(reps["start_date"]).to_numpy(dtype="datetime64[ns]"),
        index=_as_int64(reps["rep_id"]),
    )
    rep_start_raw = pd.Series(
        start_of.reindex(_as_int64(t["rep_id"])).to_numpy(dtype="datetime64[ns]")
    )
    rep_start, no_start = _epoch_days(rep_start_raw)
    scaled = is_rep & additive & ~no_start
    if not scaled.any():
        return proration, ramp, note, pace_start
    first = np.maximum(start, rep_start)
    employed = np.clip(end - first + 1, 0, None)
    proration = np.where(scaled, employed / ndays, 1.0)
    # A rep who joined mid-period is paced over the days they were there, not the whole period.
    pace_start = np.where(scaled & (employed > 0), first, start)

    s = np.flatnonzero(scaled & (employed > 0))
    ramp_sum, k_first, k_last = _ramp(
        first[s], end[s], rep_start[s], config.ramp_schedule, config.cal
    )
    ramp[s] = ramp_sum / employed[s]

    # The notes are text: written for the few rows that get one, not for every row.
    prorated = scaled & (rep_start > start) & (employed > 0)
    after = scaled & (employed == 0)
    in_ramp = np.zeros(n, dtype=bool)
    in_ramp[s] = k_first <= len(config.ramp_schedule)
    kf = np.zeros(n, dtype=np.int64)
    kl = np.zeros(n, dtype=np.int64)
    kf[s], kl[s] = k_first, k_last
    noted = np.flatnonzero(prorated | after | in_ramp)
    pct = _pct(ramp[noted])
    texts: list[str] = []
    for i, p in zip(noted.tolist(), pct.tolist(), strict=True):
        started = str(np.datetime64(int(rep_start[i]), "D"))
        if prorated[i]:
            base = f"prorated: started {started} ({employed[i]} of {ndays[i]} days)"
        elif after[i]:
            base = f"prorated: starts {started}, after the period (factor 0)"
        else:
            base = ""
        if not in_ramp[i]:
            ramp_text = ""
        elif kf[i] == kl[i]:
            ramp_text = f"ramp month {kf[i]}: {p}% of full target"
        else:
            ramp_text = f"ramp months {kf[i]}-{kl[i]}: {p}% of full target (day-weighted)"
        texts.append("; ".join(t for t in (base, ramp_text) if t))
    note.iloc[noted] = pd.Series(texts, index=note.index[noted], dtype=object)
    return proration, ramp, note, pace_start


def effective_targets(
    targets: pd.DataFrame, *, reps: pd.DataFrame, config: GapConfig
) -> pd.DataFrame:
    """Each target as :func:`compute_gaps` judges it: ``target_full, proration_factor,
    ramp_factor, target``, in the order of ``targets`` with a fresh index."""
    no_actuals = pd.DataFrame(
        {
            "subject_type": pd.Series(dtype=object),
            "subject_id": pd.Series(dtype="Int64"),
            "period": pd.Series(dtype=object),
            **{m: pd.Series(dtype="float64") for m in METRICS},
        }
    )
    rows = compute_gaps(
        targets, no_actuals, reps=reps, pipeline=None, win_rates=None, config=config
    )
    return rows[["target_full", "proration_factor", "ramp_factor", "target"]]


def compute_gaps(
    targets: pd.DataFrame,
    actuals: pd.DataFrame,
    *,
    reps: pd.DataFrame,
    pipeline: pd.DataFrame | None,
    win_rates: pd.DataFrame | None,
    config: GapConfig,
    shares: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per target: effective target, actual, gap, pace, projection and status.

    Formulas and status rules are in the module docstring. Inputs:

    * ``targets``: ``target_id, rep_id, team_id, metric, period, value``; a row with a
      ``rep_id`` is a rep target, otherwise a team target. Rows with a
      ``target_derived_from`` (:func:`analytics.targets.derive_rollup_targets`) bring their
      own ``proration_factor``, ``ramp_factor`` and ``target_note``, those of their parts.
    * ``actuals``: a wide :func:`analytics.metrics.period_metrics` frame with ``subject_type``
      ('rep' | 'team') and ``subject_id`` instead of the key; periods of several kinds may be
      mixed (matched on the canonical label).
    * ``reps``: ``rep_id, start_date`` (NaT = no proration/ramp).
    * ``pipeline``: :func:`open_pipeline` for the same ``as_of``, ``win_rates``:
      :func:`trailing_win_rate`, ``shares``: :func:`seasonal_shares` (concatenate kinds), each
      with ``subject_type, subject_id`` instead of the key.

    Columns: :data:`GAP_COLUMNS`, in the order of ``targets``.
    """
    cfg = config
    t = targets.reset_index(drop=True)
    n = len(t)
    rep_id = _as_int64(t["rep_id"])
    team_id = _as_int64(t["team_id"])
    is_rep = rep_id.notna().to_numpy(dtype=bool)
    if (~is_rep & team_id.isna().to_numpy(dtype=bool)).any():
        raise ValueError("every target needs a rep_id or a team_id")
    metric = t["metric"].to_numpy(dtype=object)
    metric_codes, metric_names = pd.factorize(metric)
    unknown = sorted({str(m) for m in metric_names} - set(METRICS))
    if (metric_codes < 0).any():
        unknown.append("(missing)")
    if unknown:
        raise ValueError(f"unknown metric(s): {', '.join(map(str, unknown))}")
    target_full = _floats(t["value"])
    if np.isnan(target_full).any():
        raise ValueError("every target needs a value")

    codes, uniques = pd.factorize(t["period"])
    if (codes < 0).any():
        raise ValueError("every target needs a period")
    parsed = [parse_period(str(u), cfg.cal) for u in uniques]
    label = np.array([p.label for p in parsed], dtype=object)[codes]
    kind = np.array([p.kind for p in parsed], dtype=object)[codes]
    start = np.array([_day(p.start) for p in parsed], dtype=np.int64)[codes]
    end = np.array([_day(p.end) for p in parsed], dtype=np.int64)[codes]
    ndays = end - start + 1

    # Looked up per metric, not per row.
    additive = np.array([METRICS[m].additive for m in metric_names], dtype=bool)[metric_codes]
    hib = np.array([METRICS[m].higher_is_better for m in metric_names], dtype=bool)[metric_codes]

    keys = pd.DataFrame(
        {
            "subject_type": np.where(is_rep, "rep", "team").astype(object),
            "subject_id": rep_id.where(is_rep, team_id),
            "period": label,
            "period_kind": kind,
            "metric": metric,
        }
    )

    proration, ramp, note, pace_start = _factors(t, is_rep, additive, start, end, ndays, reps, cfg)
    derived_from = pd.Series([None] * n, dtype=object)
    if "target_derived_from" in t:
        # A derived target is the sum of its parts as each part is judged: its factors come
        # from them, not from this period's days.
        derived_from = t["target_derived_from"].astype(object)
        derived = derived_from.notna().to_numpy(dtype=bool)
        derived_from = derived_from.where(derived, None)
        proration = np.where(derived, _floats(t["proration_factor"]), proration)
        ramp = np.where(derived, _floats(t["ramp_factor"]), ramp)
        note = note.where(~derived, t["target_note"])
    pace_days = end - pace_start + 1
    target = target_full * proration * ramp

    a = _day(cfg.as_of)
    started = a >= start
    ended = a > end
    linear = np.clip(a - start + 1, 0, ndays) / ndays
    share = np.clip(a - pace_start + 1, 0, pace_days) / pace_days
    pacing = np.full(n, "linear", dtype=object)
    if cfg.pacing == "working_days":
        hols = np.array(cfg.holidays, dtype="datetime64[D]")
        d_start = pace_start.astype("datetime64[D]")
        total = np.busday_count(d_start, (end + 1).astype("datetime64[D]"), holidays=hols)
        done = np.busday_count(
            d_start, np.clip(a + 1, pace_start, end + 1).astype("datetime64[D]"), holidays=hols
        )
        has_workdays = total > 0
        share = np.where(has_workdays, done / np.maximum(total, 1), share)
        pacing = np.where(has_workdays, "working_days", "linear").astype(object)
    elif cfg.pacing == "seasonal" and shares is not None:
        x = np.clip(a - start + 1, 1, ndays) / ndays
        found, curve = _curve_values(shares, keys, x)
        curve = np.where(started, np.where(ended, 1.0, curve), 0.0)
        share = np.where(found, curve, linear)
        pacing = np.where(found, "seasonal", "linear").astype(object)
    elapsed = np.where(additive, share, linear)
    pacing = np.where(additive, pacing, "level").astype(object)

    raw_actual = _actual_values(actuals, keys)
    actual = np.where(additive & np.isnan(raw_actual), 0.0, raw_actual)
    gap = np.where(hib, target - actual, actual - target)
    attainment = np.where(
        target == 0, np.nan, np.where(hib, _safe_div(actual, target), _safe_div(target, actual))
    )
    expected = np.where(additive, target * elapsed, target)
    expected = np.where(started, expected, 0.0)
    pace_gap = np.where(hib, actual - expected, expected - actual)
    run_rate = np.divide(actual, elapsed, out=np.full(n, np.nan), where=elapsed > 0)
    projected = np.where(additive, np.where(ended, actual, run_rate), actual)

    open_pl = np.full(n, np.nan)
    weighted = np.full(n, np.nan)
    win_rate = np.full(n, np.nan)
    movable = np.isin(metric, list(_PIPELINE_OF))
    if movable.any() and pipeline is not None:
        in_pipeline = _lookup(keys, pipeline, [*_SUBJECT, "period"], "pipeline")
    if movable.any() and win_rates is not None:
        in_rates = _lookup(keys, win_rates, _SUBJECT, "win_rates")
    for m, (open_col, weighted_col, rate_col) in _PIPELINE_OF.items():
        rows = metric == m
        if not rows.any():
            continue
        if pipeline is not None:
            open_pl[rows] = np.nan_to_num(_take(pipeline[open_col], in_pipeline[rows]))
            weighted[rows] = np.nan_to_num(_take(pipeline[weighted_col], in_pipeline[rows]))
        if win_rates is not None:
            win_rate[rows] = _take(win_rates[rate_col], in_rates[rows])
    with_pipeline = np.where(movable, actual + weighted, projected)
    remaining = target - actual
    coverage = np.where(movable & ~ended & (remaining > 0), _safe_div(open_pl, remaining), np.nan)
    coverage_needed = np.where(~ended & (win_rate > 0), _safe_div(np.ones(n), win_rate), np.nan)

    has_actual = ~np.isnan(actual)
    met = has_actual & np.where(hib, actual >= target, actual <= target)
    with np.errstate(invalid="ignore"):
        behind = np.where(
            hib, actual < cfg.on_track_min * expected, actual * cfg.on_track_min > expected
        )
    status = np.select(
        [
            target == 0,
            additive & hib & met,
            ended & met,
            ended,
            ~started,
            ~has_actual,
            behind,
        ],
        ["achieved", "achieved", "achieved", "missed", "on_track", "at_risk", "at_risk"],
        default="on_track",
    )

    out = pd.DataFrame(
        {
            "target_id": t["target_id"],
            "subject_type": keys["subject_type"],
            "rep_id": rep_id,
            "team_id": team_id,
            "metric": keys["metric"],
            "period": keys["period"],
            "period_kind": keys["period_kind"],
            "period_start": start.astype("datetime64[D]").astype("datetime64[ns]"),
            "period_end": end.astype("datetime64[D]").astype("datetime64[ns]"),
            "target_full": target_full,
            "proration_factor": proration,
            "ramp_factor": ramp,
            "target": target,
            "target_note": note.astype("str"),
            "target_derived_from": derived_from,
            "actual": actual,
            "gap": gap,
            "attainment": attainment,
            "elapsed_fraction": elapsed,
            "pacing": pacing,
            "expected_to_date": expected,
            "pace_gap": pace_gap,
            "projected": projected,
            "open_pipeline": open_pl,
            "weighted_pipeline": weighted,
            "projected_with_pipeline": with_pipeline,
            "coverage": coverage,
            "coverage_needed": coverage_needed,
            "status": status.astype(object),
        }
    )
    return out[list(GAP_COLUMNS)]
