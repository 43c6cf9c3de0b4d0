"""Projection error: each projection method backtested on the subject's own history.

A projection is only useful if its usual error is known. For every subject (rep or team) and
every past, ended month and fiscal quarter, the two projections of :mod:`analytics.gaps` are
made again as they would have been at the period's midpoint, and compared with the result.

Midpoint. A month of D days is projected with h = ⌊D / 2⌋ days elapsed: its first non-elapsed
day is ``mid = start + h`` and the elapsed share is e = h / D. A quarter of months (a, b, c) is
projected at its middle month's midpoint: elapsed days D(a) + h(b) over D(a) + D(b) + D(c)
(within three days of the quarter's own midpoint, in both calendars), so that every quarter
figure is a sum of monthly ones.

Monthly inputs per (subject, month m), from the records (:func:`midpoint_figures`), with
value = amount × rate(currency), live deals only, dates in the reporting timezone:

* ``won_mid_value`` / ``won_mid_deals``: Σ value / count of won deals with close_date in m,
  before mid(m)
* ``open_mid_value`` / ``open_mid_deals``: Σ value / count of deals (any status) with
  close_date in [mid(m), end(m)] created before mid(m): open at the midpoint, due in the rest
  of the month
* ``early_value`` / ``early_deals``: Σ value / count of deals (any status) with close_date in m
  created before mid(m − 1): open at the previous month's midpoint, due in m

Approximation: history keeps no deal's past state, so a closed deal's close date stands for
its expected close date at the midpoint, and a deal counts as open there when it was created
before it and closes on or after it. A deal whose close date was moved since, or that was
deleted, is seen where it is now.

Projections, for won_revenue (values, win rate by value) and won_deals (counts, by count):

* month m: W = won_mid(m), O = open_mid(m), r = trailing win rate of the 12 whole months before
  m (Σ won / Σ closed over m − 12 .. m − 1, as :func:`analytics.coverage.trailing_win_rate`;
  NaN when nothing closed)
* quarter (a, b, c): W = won(a) + won_mid(b), O = open_mid(b) + early(c), r over the 12 months
  before b
* ``run_rate`` = W / e
* ``pipeline`` = W + O × r (W when O = 0; undefined when O > 0 and r is NaN). The live
  ``projected_with_pipeline`` weights open deals by their CRM probability; a deal's past
  probability is not kept (and a closed deal's now says how it ended), so the backtest weights
  them by the win rate known then.
* ``actual`` = won_revenue (won_deals) of the period.

Team figures are those of its reps, each weighted by the share of the month they were on the
team (:func:`rollup_months`), as the team's metrics are.

Error over the last N ended periods (default 12 months, 4 quarters), per subject, kind, metric
and method, over the periods with actual > 0 and a defined projection (``periods`` of them):

* ``mape`` = mean |projection − actual| / actual
* ``bias`` = mean (projection − actual) / actual: > 0 means the method over-projects

``best method`` of a subject: the method with the lower ``mape`` among those with at least
:data:`MIN_PERIODS` periods (run rate on a tie); none without. The method a row shows by
default (:func:`chosen_methods`): a team's own best; a rep's team's best, else the rep's own
best; else ``run_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import FloatArray, IntArray
from analytics._records import live_rows, local, period_indices, rows_at, wall_ns
from analytics.currency import reporting_values
from analytics.metric_rollups import month_to_period
from analytics.periods import MISSING_INDEX, FiscalCalendar, period_from_index, period_index

__all__ = [
    "BACKTESTED_METRICS",
    "METHODS",
    "MID_COLUMNS",
    "MIN_PERIODS",
    "BacktestConfig",
    "backtest",
    "chosen_methods",
    "error_summary",
    "midpoint_figures",
    "months_read",
    "rollup_months",
    "shift_midpoints",
]

METHODS: Final = ("run_rate", "pipeline")
# Fewer periods than this say too little about a method to prefer it.
MIN_PERIODS: Final = 3
WIN_RATE_MONTHS: Final = 12
MID_COLUMNS: Final = (
    "won_mid_value",
    "won_mid_deals",
    "open_mid_value",
    "open_mid_deals",
    "early_value",
    "early_deals",
)
_COUNTS: Final = ("won_mid_deals", "open_mid_deals", "early_deals")
# The monthly metrics the backtest reads besides MID_COLUMNS.
METRIC_INPUTS: Final = ("won_revenue", "closed_value", "won_deals", "closed_deals")
# metric -> (won to the midpoint, open at it, open at the previous month's, won, closed).
_OF_METRIC: Final = {
    "won_revenue": (
        "won_mid_value",
        "open_mid_value",
        "early_value",
        "won_revenue",
        "closed_value",
    ),
    "won_deals": ("won_mid_deals", "open_mid_deals", "early_deals", "won_deals", "closed_deals"),
}
BACKTESTED_METRICS: Final = tuple(_OF_METRIC)


@dataclass(frozen=True)
class BacktestConfig:
    as_of: date
    cal: FiscalCalendar = field(default_factory=FiscalCalendar)
    months: int = 12  # ended months summarised
    quarters: int = 4  # ended quarters summarised
    min_periods: int = MIN_PERIODS


def _month_table(months: IntArray, cal: FiscalCalendar) -> tuple[IntArray, IntArray, IntArray]:
    """For the sorted distinct month indices ``months``: first epoch day, days, midpoint day."""
    periods = [period_from_index("month", int(m), cal) for m in months]
    start = np.array([p.start for p in periods], dtype="datetime64[D]").astype(np.int64)
    days = np.array([p.days for p in periods], dtype=np.int64)
    return start, days, start + days // 2


def midpoint_figures(
    deals: pd.DataFrame,
    *,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
    tz: str = "UTC",
    key: str = "rep_id",
) -> pd.DataFrame:
    """:data:`MID_COLUMNS` per (``key``, month of close_date) of the live deals (module
    docstring), one row per cell with any deal counted. ``deals`` as
    :func:`analytics.metrics.period_metrics` reads them. Columns: ``key, period_index`` and
    :data:`MID_COLUMNS` (counts int64, values float64)."""
    columns = [key, "period_index", *MID_COLUMNS]
    live = live_rows(deals)
    close_m = period_indices(rows_at(deals["close_date"], live), "month", cal)
    known = close_m != MISSING_INDEX
    if not known.any():
        return _empty(columns, deals[key])
    close_day = (
        pd.to_datetime(rows_at(deals["close_date"], live)).to_numpy().astype("datetime64[D]")
    ).astype(np.int64)
    created = wall_ns(local(rows_at(deals["created_at"], live), tz)).astype("datetime64[D]")
    no_created = np.isnat(created)
    created_day = np.where(no_created, np.iinfo(np.int64).max, created.astype(np.int64))
    table = np.unique(np.concatenate([close_m[known], close_m[known] - 1]))
    _, _, mid = _month_table(table, cal)
    at = np.searchsorted(table, np.where(known, close_m, table[0]))
    before = np.searchsorted(table, np.where(known, close_m - 1, table[0]))
    status = rows_at(deals["status"], live)
    won = status.eq("won").to_numpy(dtype=bool, na_value=False) & known
    value = reporting_values(deals["amount"], deals["currency"], rates, live)
    value = np.where(np.isnan(value), 0.0, value)
    flags = {
        "won_mid": won & (close_day < mid[at]),
        "open_mid": known & (close_day >= mid[at]) & (created_day < mid[at]),
        "early": known & (created_day < mid[before]),
    }
    counted = flags["won_mid"] | flags["open_mid"] | flags["early"]
    if not counted.any():
        return _empty(columns, deals[key])
    keys = rows_at(deals[key], live).to_numpy()[counted]
    codes, uniques = pd.factorize(keys)
    first = int(close_m[counted].min())
    span = int(close_m[counted].max()) - first + 1
    cell = codes.astype(np.int64) * span + (close_m[counted] - first)
    cells, inverse = np.unique(cell, return_inverse=True)
    out: dict[str, object] = {
        key: np.asarray(uniques)[cells // span],
        "period_index": (cells % span + first).astype(np.int64),
    }
    for name, flag in flags.items():
        picked = flag[counted]
        out[f"{name}_value"] = np.bincount(
            inverse, weights=np.where(picked, value[counted], 0.0), minlength=len(cells)
        )
        out[f"{name}_deals"] = np.bincount(inverse[picked], minlength=len(cells)).astype(np.int64)
    return pd.DataFrame(out)[columns]


def _empty(columns: list[str], keys: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    frame[columns[0]] = keys.iloc[:0].to_numpy()
    frame["period_index"] = frame["period_index"].astype(np.int64)
    for c in _COUNTS:
        frame[c] = frame[c].astype(np.int64)
    return frame


def rollup_months(monthly: pd.DataFrame, tenure: pd.DataFrame) -> pd.DataFrame:
    """Team months from rep months: per (team_id, period_index), each numeric column c

        c(team, m) = Σ weight(rep, team, m) × c(rep, m)

    over ``tenure``'s rows (``rep_id, period_index, team_id, weight``: the share of m the rep
    was on the team or one below it), as :func:`analytics.metric_rollups.rollup_metrics`."""
    values = [c for c in monthly.columns if c not in ("rep_id", "period_index")]
    rows = monthly.merge(
        tenure[["rep_id", "period_index", "team_id", "weight"]], on=["rep_id", "period_index"]
    )
    rows[values] = rows[values].astype("float64").mul(rows["weight"].to_numpy(), axis=0)
    return rows.groupby(["team_id", "period_index"], as_index=False, sort=True)[values].sum()


def _dense(
    monthly: pd.DataFrame, key: str, lo: int, hi: int
) -> tuple[pd.Index, dict[str, FloatArray]]:
    """The subjects, and each input column as a subjects × months ``lo..hi`` array (0 where a
    cell has no row)."""
    inside = monthly[monthly["period_index"].between(lo, hi)]
    codes, uniques = pd.factorize(inside[key])
    n, span = len(uniques), hi - lo + 1
    flat = codes.astype(np.int64) * span + (inside["period_index"].to_numpy(np.int64) - lo)
    out: dict[str, FloatArray] = {}
    for c in (*METRIC_INPUTS, *MID_COLUMNS):
        grid = np.zeros(n * span)
        if c in inside:  # one row per (subject, month): a plain assignment
            grid[flat] = np.nan_to_num(inside[c].to_numpy(dtype="float64", na_value=0.0))
        out[c] = grid.reshape(n, span)
    return pd.Index(uniques), out


def _trailing(values: FloatArray) -> FloatArray:
    """Σ over the :data:`WIN_RATE_MONTHS` months before each month (columns), NaN for the
    first ones, whose window starts before the array."""
    n, span = values.shape
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(values, axis=1)], axis=1)
    out = np.full((n, span), np.nan)
    w = WIN_RATE_MONTHS
    if span > w:
        out[:, w:] = cs[:, w:span] - cs[:, : span - w]
    return out


@dataclass(frozen=True)
class _Instants:
    """Where each backtested period is projected from, as offsets into the month arrays:
    months before it counted whole (``whole``: the quarter's first month, or none), the month
    of the midpoint (``mid``), a month after it (``late``: the quarter's last, or none)."""

    kind: str
    index: IntArray  # the periods' own indices
    whole: IntArray  # -1: none
    mid: IntArray
    late: IntArray  # -1: none
    elapsed: FloatArray  # share of the period's days before the midpoint


def months_read(cfg: BacktestConfig) -> tuple[int, int]:
    """The month indices ``lo..hi`` whose figures :func:`backtest` reads: the ended periods
    and the trailing win-rate window before them."""
    current = int(period_index(pd.Series([pd.Timestamp(cfg.as_of)]), "month", cfg.cal)[0])
    start = current - max(cfg.months, 3 * cfg.quarters + 3)
    return start - WIN_RATE_MONTHS, current - 1


def _instants(cfg: BacktestConfig) -> tuple[int, int, list[_Instants]]:
    """The month range the backtest reads (``lo..hi``) and its ended months and quarters."""
    cal = cfg.cal
    lo, hi = months_read(cfg)
    current = hi + 1
    months = np.arange(lo, hi + 1, dtype=np.int64)
    first_day, days, mid_day = _month_table(months, cal)
    half = (mid_day - first_day).astype("float64")
    ended = np.arange(current - cfg.months, current, dtype=np.int64)
    at = ended - lo
    out = [
        _Instants(
            "month", ended, np.full(len(at), -1), at, np.full(len(at), -1), half[at] / days[at]
        )
    ]
    quarter_of = month_to_period(months, "quarter", cal)
    current_q = int(month_to_period(np.array([current]), "quarter", cal)[0])
    wanted = np.arange(current_q - cfg.quarters, current_q, dtype=np.int64)
    a = np.searchsorted(quarter_of, wanted, side="left")
    complete = (
        (a >= 0)
        & (a + 2 < len(months))
        & (quarter_of[np.minimum(a + 2, len(months) - 1)] == wanted)
    )
    wanted, a = wanted[complete], a[complete]
    total = days[a] + days[a + 1] + days[a + 2]
    out.append(_Instants("quarter", wanted, a, a + 1, a + 2, (days[a] + half[a + 1]) / total))
    return lo, hi, out


def _pick(grid: FloatArray, at: IntArray) -> FloatArray:
    """Columns ``at`` of a subjects × months array, 0 where ``at`` is −1."""
    out: FloatArray = np.where(at >= 0, grid[:, np.maximum(at, 0)], 0.0)
    return out


def backtest(monthly: pd.DataFrame, cfg: BacktestConfig, *, key: str = "rep_id") -> pd.DataFrame:
    """Each subject's projections of its ended periods made at their midpoints, against the
    actual (module docstring).

    ``monthly``: one row per (``key``, ``period_index``) month with :data:`METRIC_INPUTS` and
    :data:`MID_COLUMNS` (missing cells count 0). Columns: ``key, period_kind, period_index,
    metric, actual, run_rate, pipeline``: the last ``cfg.months`` ended months and
    ``cfg.quarters`` ended quarters of every subject, for each of :data:`BACKTESTED_METRICS`.
    """
    lo, hi, instants = _instants(cfg)
    subjects, g = _dense(monthly, key, lo, hi)
    n = len(subjects)
    parts: list[pd.DataFrame] = []
    for metric, (won_mid, open_mid, early, won, closed) in _OF_METRIC.items():
        rate = _trailing(g[won]) / np.where(_trailing(g[closed]) > 0, _trailing(g[closed]), np.nan)
        for inst in instants:
            k = len(inst.index)
            w = _pick(g[won], inst.whole) + g[won_mid][:, inst.mid]
            o = g[open_mid][:, inst.mid] + _pick(g[early], inst.late)
            r = rate[:, inst.mid]
            weighted = np.where(o > 0, o * r, 0.0)
            actual = _pick(g[won], inst.whole) + g[won][:, inst.mid] + _pick(g[won], inst.late)
            parts.append(
                pd.DataFrame(
                    {
                        key: np.repeat(subjects.to_numpy(), k),
                        "period_kind": inst.kind,
                        "period_index": np.tile(inst.index, n),
                        "metric": metric,
                        "actual": actual.ravel(),
                        "run_rate": (w / inst.elapsed[None, :]).ravel(),
                        "pipeline": (w + weighted).ravel(),
                    }
                )
            )
    columns = [key, "period_kind", "period_index", "metric", "actual", *METHODS]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def error_summary(
    projections: pd.DataFrame, *, key: str = "rep_id", min_periods: int = MIN_PERIODS
) -> pd.DataFrame:
    """Per (``key``, period_kind, metric) of a :func:`backtest` frame, for each method M of
    :data:`METHODS`, over the periods with actual > 0 and a defined projection:

    * ``M_mape`` = mean |projection − actual| / actual (NaN over no period)
    * ``M_bias`` = mean (projection − actual) / actual (> 0: over-projects)
    * ``M_periods`` = how many periods

    and ``best_method``: the method with the lower mape among those with at least
    ``min_periods`` periods (run rate on a tie), None when neither has."""
    group = [key, "period_kind", "metric"]
    actual = projections["actual"].to_numpy(dtype="float64")
    sums = projections[group].copy()
    for m in METHODS:
        p = projections[m].to_numpy(dtype="float64")
        ok = (actual > 0) & ~np.isnan(p)
        rel = np.where(ok, (p - actual) / np.where(ok, actual, 1.0), 0.0)
        sums[f"{m}_abs"] = np.abs(rel)
        sums[f"{m}_signed"] = rel
        sums[f"{m}_periods"] = ok.astype(np.int64)
    out = sums.groupby(group, as_index=False, sort=True).sum()
    best = np.full(len(out), None, dtype=object)
    best_mape = np.full(len(out), np.inf)
    for m in METHODS:
        count = out[f"{m}_periods"].to_numpy()
        used = np.where(count > 0, count, np.nan)
        out[f"{m}_mape"] = out.pop(f"{m}_abs") / used
        out[f"{m}_bias"] = out.pop(f"{m}_signed") / used
        mape = out[f"{m}_mape"].to_numpy()
        better = (count >= min_periods) & (mape < best_mape)
        best[better] = m
        best_mape[better] = mape[better]
    out["best_method"] = best
    return out[
        [*group, *(f"{m}_{s}" for m in METHODS for s in ("mape", "bias", "periods")), "best_method"]
    ]


def chosen_methods(
    rep_summary: pd.DataFrame, team_summary: pd.DataFrame, rep_teams: pd.DataFrame
) -> pd.DataFrame:
    """The method each subject's projection uses by default, per (period_kind, metric): a
    team's own ``best_method``; a rep's team's (``rep_teams``: ``rep_id, team_id``, the rep's
    own team), else the rep's own; ``run_rate`` when none is known.

    ``rep_summary`` / ``team_summary``: :func:`error_summary` frames keyed by ``rep_id`` /
    ``team_id``. Columns: ``subject_type, subject_id, period_kind, metric, method`` for the
    subjects of either summary."""
    on = ["period_kind", "metric"]
    team = team_summary[["team_id", *on, "best_method"]]
    reps = rep_summary[["rep_id", *on, "best_method"]].merge(
        rep_teams[["rep_id", "team_id"]], on="rep_id", how="left"
    )
    reps = reps.merge(
        team.rename(columns={"best_method": "team_method"}), on=["team_id", *on], how="left"
    )
    rep_method = reps["team_method"].where(reps["team_method"].notna(), reps["best_method"])
    frames = [
        pd.DataFrame(
            {
                "subject_type": "rep",
                "subject_id": reps["rep_id"].to_numpy(),
                "period_kind": reps["period_kind"].to_numpy(),
                "metric": reps["metric"].to_numpy(),
                "method": rep_method.fillna("run_rate").to_numpy(dtype=object),
            }
        ),
        pd.DataFrame(
            {
                "subject_type": "team",
                "subject_id": team["team_id"].to_numpy(),
                "period_kind": team["period_kind"].to_numpy(),
                "metric": team["metric"].to_numpy(),
                "method": team["best_method"].fillna("run_rate").to_numpy(dtype=object),
            }
        ),
    ]
    return pd.concat(frames, ignore_index=True)


def shift_midpoints(
    base: pd.DataFrame, *, added: pd.DataFrame, removed: pd.DataFrame, key: str = "rep_id"
) -> pd.DataFrame:
    """A :func:`midpoint_figures` frame after some deals changed, without its other deals:
    per cell, base + added − removed (``added`` / ``removed``: the figures of the changed
    deals as they are now / as ``base`` counted them). A value is exactly 0 once its count is
    (no drift from adding and taking back the same amounts); a cell with every count 0 has no
    row, as in :func:`midpoint_figures`."""
    cell = [key, "period_index"]
    changes = [f for f in (added, removed) if len(f)]
    if not changes:
        return base
    signed = pd.concat(
        [
            base,
            *(f.assign(**{c: -f[c] for c in MID_COLUMNS}) if f is removed else f for f in changes),
        ],
        ignore_index=True,
    )
    out = signed.groupby(cell, as_index=False, sort=True)[list(MID_COLUMNS)].sum()
    for count in _COUNTS:
        out.loc[out[count] == 0, count.replace("_deals", "_value")] = 0.0
    present = (out[list(_COUNTS)] != 0).any(axis=1).to_numpy()
    out = out[present].reset_index(drop=True)
    out[list(_COUNTS)] = out[list(_COUNTS)].astype(np.int64)
    return out
