"""Trends, streaks and ranks: how a subject's figures move over time and compare with others.

* :func:`trend` -- least-squares slope of each subject's metric over the last N periods.
* :func:`streaks` -- consecutive missed / hit periods up to the latest completed one.
* :func:`ranks` -- rank and percentile within a group (team) and the whole company, per period.

Periods are addressed by ``period_index`` (see :func:`analytics.periods.period_index`); when a
frame has only ``period`` labels the index is derived from them. A frame must hold one period
kind per subject and metric (or carry a ``period_kind`` column, which is then grouped by).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import FloatArray, IntArray
from analytics.metrics import METRICS
from analytics.periods import index_label, parse_period, period_index

__all__ = [
    "RANK_COLUMNS",
    "STREAK_COLUMNS",
    "TREND_COLUMNS",
    "misses_by_period",
    "ranks",
    "streaks",
    "trend",
]

TREND_COLUMNS: Final[tuple[str, ...]] = (
    "metric",
    "period_kind",
    "first_period",
    "last_period",
    "values",
    "points",
    "mean",
    "slope",
    "relative_slope",
    "direction",
    "improving",
)
STREAK_COLUMNS: Final[tuple[str, ...]] = (
    "metric",
    "period_kind",
    "last_period",
    "last_period_index",
    "last_outcome",
    "consecutive_misses",
    "consecutive_hits",
    "persistent_underperformer",
)
RANK_COLUMNS: Final[tuple[str, ...]] = (
    "rank_in_team",
    "team_size",
    "percentile_in_team",
    "rank_in_company",
    "company_size",
    "percentile_in_company",
)
_DECIDED: Final[dict[str, bool]] = {"missed": True, "achieved": False}


def _keys(key: str | Sequence[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def _kinds_and_indices(frame: pd.DataFrame) -> tuple[pd.Series, IntArray]:
    """(period kind, period index) per row, from ``period_index`` or parsed ``period`` labels.

    Labels are parsed once per distinct label; the index comes from the period's first day,
    which maps back to the same label in the default calendar.
    """
    if "period" not in frame and "period_index" not in frame:
        raise ValueError("expected a 'period' or 'period_index' column")
    if "period" not in frame:
        kinds = frame["period_kind"] if "period_kind" in frame else pd.Series("", index=frame.index)
        return kinds.astype(object), frame["period_index"].to_numpy(dtype=np.int64)
    codes, uniques = pd.factorize(frame["period"])
    if (codes < 0).any():
        raise ValueError("rows without a period label")
    parsed = [parse_period(str(u)) for u in uniques]
    kind_table = np.array([p.kind for p in parsed], dtype=object)
    if "period_index" in frame:
        index = frame["period_index"].to_numpy(dtype=np.int64)
    else:
        table = np.array(
            [int(period_index(pd.Series([pd.Timestamp(p.start)]), p.kind)[0]) for p in parsed],
            dtype=np.int64,
        )
        index = table[codes]
    return pd.Series(kind_table[codes], index=frame.index, dtype=object), index


def _labels(kinds: pd.Series, indices: IntArray) -> npt.NDArray[np.object_]:
    """Period label per (kind, index) row, formatted once per distinct pair."""
    pairs = pd.MultiIndex.from_arrays([kinds.to_numpy(dtype=object), indices])
    codes, uniques = pd.factorize(pairs)
    table = np.array([index_label(str(k), int(i)) if k else None for k, i in uniques], dtype=object)
    out: npt.NDArray[np.object_] = table[codes]
    return out


# ----------------------------------------------------------------------------- trend


def trend(
    history: pd.DataFrame,
    *,
    periods: int = 6,
    key: str | Sequence[str] = "rep_id",
    value: str = "value",
    end: int | None = None,
    flat_within: float = 0.02,
    min_points: int = 3,
) -> pd.DataFrame:
    """Direction of each (subject, metric) over the last ``periods`` periods.

    ``history`` is long: ``key…, metric, period`` (and/or ``period_index``), ``value``. The
    window is the ``periods`` period indices ending at ``end`` (default: the latest index in
    ``history`` for that period kind); x = 0..periods−1 is the position in the window. Over the
    n points with a value (missing periods are gaps, not zeros):

    * ``values``         = the window's values, oldest first, NaN where missing
    * ``mean``           = ȳ
    * ``slope``          = Σ (x − x̄)(y − ȳ) / Σ (x − x̄)²   (change per period; NaN when
      n < ``min_points``)
    * ``relative_slope`` = slope / |ȳ|   (NaN when ȳ = 0)
    * ``direction``      = "up" if relative_slope > flat_within, "down" if < −flat_within,
      "flat" otherwise (None without a slope; a zero mean with a zero slope is "flat")
    * ``improving``      = direction agrees with the metric's ``higher_is_better`` (metrics
      outside :data:`analytics.metrics.METRICS` count as higher-is-better); None when flat.

    Columns: ``key…`` then :data:`TREND_COLUMNS`; one row per (subject, metric, kind) with at
    least one value in the window.
    """
    if periods < 2:
        raise ValueError(f"periods must be >= 2, got {periods!r}")
    keys = _keys(key)
    frame = _in_window(history, keys=keys, value=value, periods=periods, end=end)
    if frame.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in (*keys, *TREND_COLUMNS)})
        return empty
    group_cols = [*keys, "metric", "period_kind"]
    # One row per (subject, metric, kind, x); duplicates are averaged rather than double-counted.
    cells = frame.groupby([*group_cols, "_end", "_x"], sort=True, dropna=False)["_value"].mean()
    wide = cells.unstack("_x").reindex(columns=range(periods))
    y = wide.to_numpy(dtype="float64")
    n, y_mean, slope, relative = _fit(y, periods=periods, min_points=min_points)
    direction = np.full(len(y), None, dtype=object)
    known = ~np.isnan(relative)
    direction[known] = np.where(
        relative[known] > flat_within,
        "up",
        np.where(relative[known] < -flat_within, "down", "flat"),
    )

    out = wide.index.to_frame(index=False)
    metric_better = out["metric"].map({m: spec.higher_is_better for m, spec in METRICS.items()})
    higher = metric_better.fillna(True).to_numpy(dtype=bool)
    improving = np.full(len(y), None, dtype=object)
    moving = np.isin(direction, ["up", "down"])
    improving[moving] = (direction[moving] == "up") == higher[moving]

    end_index = out["_end"].to_numpy(dtype=np.int64)
    kind_col = out["period_kind"].astype(object)
    out["first_period"] = _labels(kind_col, end_index - periods + 1)
    out["last_period"] = _labels(kind_col, end_index)
    out["values"] = pd.Series(y.tolist(), dtype=object)
    out["points"] = n.astype(np.int64)
    out["mean"] = y_mean
    out["slope"] = slope
    out["relative_slope"] = relative
    out["direction"] = pd.Series(direction, dtype=object)
    out["improving"] = pd.Series(improving, dtype=object)
    return out[[*keys, *TREND_COLUMNS]]


def _in_window(
    history: pd.DataFrame, *, keys: list[str], value: str, periods: int, end: int | None
) -> pd.DataFrame:
    """The rows of ``history`` with a value inside their window: ``keys…, metric,
    period_kind, _index, _value, _end`` (the window's last index) and ``_x`` (position)."""
    kinds, indices = _kinds_and_indices(history)
    frame = history[[*keys, "metric"]].copy()
    frame["period_kind"] = kinds.to_numpy(dtype=object)
    frame["_index"] = indices
    frame["_value"] = history[value].to_numpy(dtype="float64", na_value=np.nan)
    if end is None:
        last = frame.groupby("period_kind", dropna=False)["_index"].transform("max")
        frame["_end"] = last.to_numpy(dtype=np.int64)
    else:
        frame["_end"] = end
    frame["_x"] = frame["_index"] - (frame["_end"] - periods + 1)
    return frame[(frame["_x"] >= 0) & (frame["_x"] < periods) & frame["_value"].notna()]


def _fit(
    y: FloatArray, *, periods: int, min_points: int
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """(n, ȳ, slope, relative_slope) of each row of ``y`` (x = 0..periods−1, NaN = no point),
    formulas in :func:`trend`."""
    present = ~np.isnan(y)
    n = present.sum(axis=1)
    x = np.broadcast_to(np.arange(periods, dtype="float64"), y.shape)
    y0 = np.where(present, y, 0.0)
    x_mean = np.where(present, x, 0.0).sum(axis=1) / n
    y_mean = y0.sum(axis=1) / n
    dx = np.where(present, x - x_mean[:, None], 0.0)
    sxx = (dx * dx).sum(axis=1)
    sxy = (dx * (y0 - y_mean[:, None])).sum(axis=1)
    enough = (n >= min_points) & (sxx > 0)
    slope = np.where(enough, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
    scale = np.abs(y_mean)
    relative = np.where(scale > 0, slope / np.where(scale > 0, scale, 1.0), np.nan)
    relative = np.where(enough & (scale == 0) & (slope == 0), 0.0, relative)
    return n, y_mean, slope, relative


# --------------------------------------------------------------------------- streaks


def streaks(
    gaps_history: pd.DataFrame,
    *,
    key: str | Sequence[str] = "rep_id",
    as_of: date | None = None,
    persistent_after: int = 3,
) -> pd.DataFrame:
    """Runs of missed and hit targets, per (subject, metric, period kind).

    ``gaps_history`` has ``key…, metric, period`` (and/or ``period_index``) and ``status``
    (as :func:`analytics.gaps.compute_gaps`) or ``attainment``. A row is *completed* when its
    outcome is decided: status "missed" (a miss) or "achieved" (a hit) -- other statuses are
    still open -- or, without ``status``, a known attainment (< 1 is a miss, ≥ 1 a hit). With
    ``as_of`` and a ``period_end`` column, rows whose period has not ended by ``as_of`` (end ≥
    as_of) are left out as well; without them every decided row counts as completed.

    Up to each subject's latest completed period L:

    * ``consecutive_misses`` = number of completed periods L, L−1, … that are all misses
      (0 when L is a hit); ``consecutive_hits`` likewise for hits. A period without a row
      (e.g. no target) breaks the run.
    * ``persistent_underperformer`` = consecutive_misses ≥ ``persistent_after``

    Columns: ``key…`` then :data:`STREAK_COLUMNS`; one row per group with a completed period.
    """
    if persistent_after < 1:
        raise ValueError(f"persistent_after must be >= 1, got {persistent_after!r}")
    keys = _keys(key)
    kinds, indices = _kinds_and_indices(gaps_history)
    if "status" in gaps_history:
        status = gaps_history["status"].astype(object)
        decided = status.isin(list(_DECIDED)).to_numpy(dtype=bool)
        missed = status.map(_DECIDED).fillna(False).to_numpy(dtype=bool)
    elif "attainment" in gaps_history:
        attainment = gaps_history["attainment"].to_numpy(dtype="float64", na_value=np.nan)
        decided = ~np.isnan(attainment)
        missed = decided & (attainment < 1.0)
    else:
        raise ValueError("streaks needs a 'status' or an 'attainment' column")
    if as_of is not None and "period_end" in gaps_history:
        ends = pd.to_datetime(gaps_history["period_end"]).dt.date
        decided &= (ends < as_of).to_numpy(dtype=bool, na_value=False)

    frame = gaps_history[[*keys, "metric"]].copy()
    frame["period_kind"] = kinds.to_numpy(dtype=object)
    frame["_index"] = indices
    frame["_missed"] = missed
    frame = frame[decided]
    group_cols = [*keys, "metric", "period_kind"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*keys, *STREAK_COLUMNS)})
    # A subject may have several rows for one period (e.g. a target per source); a period is
    # a miss if any of its decided rows missed.
    frame = (
        frame.groupby([*group_cols, "_index"], sort=True, dropna=False)["_missed"]
        .max()
        .reset_index()
    )
    group = frame.groupby(group_cols, sort=False, dropna=False).ngroup().to_numpy()
    idx = frame["_index"].to_numpy(dtype=np.int64)
    miss = frame["_missed"].to_numpy(dtype=bool)
    starts_run = np.ones(len(frame), dtype=bool)
    starts_run[1:] = (group[1:] != group[:-1]) | (idx[1:] != idx[:-1] + 1) | (miss[1:] != miss[:-1])
    run_id = np.cumsum(starts_run)
    run_length = pd.Series(np.ones(len(frame), dtype=np.int64)).groupby(run_id).cumsum()
    frame["_run"] = run_length.to_numpy(dtype=np.int64)
    last = frame.groupby(group_cols, sort=True, dropna=False).tail(1).reset_index(drop=True)
    last_missed = last["_missed"].to_numpy(dtype=bool)
    run = last["_run"].to_numpy(dtype=np.int64)
    out = last[group_cols].copy()
    kind_col = out["period_kind"].astype(object)
    last_index = last["_index"].to_numpy(dtype=np.int64)
    out["last_period"] = _labels(kind_col, last_index)
    out["last_period_index"] = last_index
    out["last_outcome"] = np.where(last_missed, "missed", "achieved").astype(object)
    out["consecutive_misses"] = np.where(last_missed, run, 0).astype(np.int64)
    out["consecutive_hits"] = np.where(last_missed, 0, run).astype(np.int64)
    out["persistent_underperformer"] = out["consecutive_misses"] >= persistent_after
    return out[[*keys, *STREAK_COLUMNS]]


def misses_by_period(gaps_history: pd.DataFrame, *, key: str | Sequence[str]) -> pd.Series:
    """For every row: the missed periods in a row up to it, as seen from that period.

    ``gaps_history`` as for :func:`streaks`, with ``status``. Per (subject, metric, kind), over
    rows in period order: a ``missed`` row extends the run of the adjacent previous period by
    one, an ``achieved`` row is 0, and an undecided row (``on_track``/``at_risk``: the period is
    still running) carries the run of the periods before it, so the current month already
    shows "3 misses in a row". A period without a row breaks the run. Returns an int Series
    aligned with ``gaps_history``.
    """
    keys = _keys(key)
    _, indices = _kinds_and_indices(gaps_history)
    kinds, _ = _kinds_and_indices(gaps_history)
    status = gaps_history["status"].astype(object)
    frame = pd.DataFrame(
        {
            "group": gaps_history[[*keys, "metric"]]
            .assign(_kind=kinds.to_numpy(dtype=object))
            .groupby([*keys, "metric", "_kind"], dropna=False, sort=False)
            .ngroup()
            .to_numpy(),
            "index": indices,
            "missed": status.eq("missed").to_numpy(dtype=bool),
            "hit": status.eq("achieved").to_numpy(dtype=bool),
            "row": np.arange(len(gaps_history)),
        }
    ).sort_values(["group", "index"], kind="stable")
    group = frame["group"].to_numpy()
    index = frame["index"].to_numpy(dtype=np.int64)
    missed = frame["missed"].to_numpy()
    new_segment = np.ones(len(frame), dtype=bool)
    # A run continues only into the adjacent next period of the same group after a miss.
    new_segment[1:] = (group[1:] != group[:-1]) | (index[1:] != index[:-1] + 1) | ~missed[:-1]
    segment = np.cumsum(new_segment)
    run = pd.Series(missed.astype(np.int64)).groupby(segment).cumsum().to_numpy()
    value = np.where(frame["hit"].to_numpy(), 0, run)
    out = np.zeros(len(frame), dtype=np.int64)
    out[frame["row"].to_numpy()] = value
    return pd.Series(out, index=gaps_history.index, name="consecutive_misses")


# ----------------------------------------------------------------------------- ranks


def _rank_within(
    frame: pd.DataFrame, by: list[str], column: str, ascending: bool
) -> tuple[pd.Series, pd.Series, pd.Series]:
    grouped = frame.groupby(by, sort=False, dropna=True)[column]
    rank = grouped.rank(method="min", ascending=ascending)
    size = grouped.transform("count")
    denominator = (size - 1).where(size > 1)
    percentile = (100.0 * (size - rank) / denominator).where(size > 1, 100.0)
    percentile = percentile.where(rank.notna())
    return rank.astype("Int64"), size.astype("Int64"), percentile.astype("float64")


def ranks(
    frame: pd.DataFrame,
    *,
    metric: str,
    group: str = "team_id",
    period: str = "period",
    higher_is_better: bool | None = None,
) -> pd.DataFrame:
    """Rank and percentile of ``frame[metric]`` within each ``group`` and company, per period.

    ``higher_is_better`` defaults to :data:`analytics.metrics.METRICS` (lower-is-better metrics
    such as ``sales_cycle_days`` rank ascending); it is required for other columns (e.g.
    ``attainment``). Within one period and group, with n = the number of rows with a value:

    * ``rank``       = 1 + number of rows strictly better (ties share the better rank)
    * ``percentile`` = 100 × (n − rank) / (n − 1); 100 when n = 1 (100 = best, 0 = worst)

    Rows without a value get no rank; rows without a group get no team rank. Returns
    ``frame`` with :data:`RANK_COLUMNS` added (``*_size`` = n), same index and order.
    """
    if higher_is_better is None:
        if metric not in METRICS:
            raise ValueError(
                f"{metric!r} is not a catalogue metric; pass higher_is_better explicitly"
            )
        higher_is_better = METRICS[metric].higher_is_better
    for column in (metric, group, period):
        if column not in frame:
            raise ValueError(f"ranks: missing column {column!r}")
    work = frame[[period, group]].copy()
    work["_value"] = frame[metric].to_numpy(dtype="float64", na_value=np.nan)
    ascending = not higher_is_better
    out = frame.copy()
    team = _rank_within(work, [period, group], "_value", ascending)
    company = _rank_within(work, [period], "_value", ascending)
    for name, series in zip(RANK_COLUMNS[:3], team, strict=True):
        out[name] = series
    for name, series in zip(RANK_COLUMNS[3:], company, strict=True):
        out[name] = series
    return out
