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
* ``seasonal``: the subject's learned curve from :func:`analytics.pacing.seasonal_shares` at
  position
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

from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import (
    BoolArray,
    FloatArray,
    IntArray,
    ObjArray,
    as_int64,
    epoch_day,
    floats,
    safe_div,
)
from analytics.metrics import METRICS
from analytics.pacing import PACINGS, Pacing, elapsed_shares
from analytics.periods import FiscalCalendar, parse_period
from analytics.proration import target_factors

__all__ = [
    "GAP_COLUMNS",
    "GapConfig",
    "Pacing",
    "compute_gaps",
    "effective_targets",
]

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
        if self.pacing not in PACINGS:
            raise ValueError(f"pacing must be one of {PACINGS}, got {self.pacing!r}")
        if not self.on_track_min > 0:
            raise ValueError(f"on_track_min must be > 0, got {self.on_track_min!r}")
        if any(not r >= 0 for r in self.ramp_schedule):
            raise ValueError(f"ramp_schedule shares must be >= 0, got {self.ramp_schedule!r}")


# ------------------------------------------------------------------------------ lookups


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
            pair = [as_int64(v) for v in pair]
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
    source = floats(values)
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
    tg = _read_targets(targets, cfg.cal)
    proration, ramp, note, derived_from, pace_start = _factors(tg, reps, cfg)
    target = tg.target_full * proration * ramp
    a = epoch_day(cfg.as_of)
    started = a >= tg.start
    ended = a > tg.end
    elapsed, pacing = elapsed_shares(
        pacing=cfg.pacing,
        as_of=a,
        start=tg.start,
        end=tg.end,
        pace_start=pace_start,
        additive=tg.additive,
        holidays=cfg.holidays,
        shares=shares,
        keys=tg.keys,
    )
    progress = _progress(tg, target, elapsed, _actual_values(actuals, tg.keys), started, ended)
    pipeline_figures = _pipeline_figures(
        tg, pipeline, win_rates, progress["actual"], target, progress["projected"], ended
    )
    status = _status(
        tg, target, progress["actual"], progress["expected_to_date"], started, ended, cfg
    )
    keys = tg.keys
    out = pd.DataFrame(
        {
            "target_id": tg.frame["target_id"],
            "subject_type": keys["subject_type"],
            "rep_id": tg.rep_id,
            "team_id": tg.team_id,
            "metric": keys["metric"],
            "period": keys["period"],
            "period_kind": keys["period_kind"],
            "period_start": tg.start.astype("datetime64[D]").astype("datetime64[ns]"),
            "period_end": tg.end.astype("datetime64[D]").astype("datetime64[ns]"),
            "target_full": tg.target_full,
            "proration_factor": proration,
            "ramp_factor": ramp,
            "target": target,
            "target_note": note.astype("str"),
            "target_derived_from": derived_from,
            "elapsed_fraction": elapsed,
            "pacing": pacing,
            **progress,
            **pipeline_figures,
            "status": status,
        }
    )
    return out[list(GAP_COLUMNS)]


# ------------------------------------------------------------------- compute_gaps' steps


@dataclass(frozen=True)
class _Targets:
    """The targets as arrays, one entry per row in the order of ``targets``."""

    frame: pd.DataFrame  # the targets, with a fresh index
    rep_id: pd.Series
    team_id: pd.Series
    is_rep: BoolArray
    metric: ObjArray
    additive: BoolArray
    hib: BoolArray  # higher is better
    target_full: FloatArray
    start: IntArray  # first and last day of the period, in epoch days
    end: IntArray
    keys: pd.DataFrame  # subject_type, subject_id, period, period_kind, metric


def _read_targets(targets: pd.DataFrame, cal: FiscalCalendar) -> _Targets:
    """The targets checked (a subject, a known metric, a value, a period each) and read."""
    t = targets.reset_index(drop=True)
    rep_id = as_int64(t["rep_id"])
    team_id = as_int64(t["team_id"])
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
    target_full = floats(t["value"])
    if np.isnan(target_full).any():
        raise ValueError("every target needs a value")

    codes, uniques = pd.factorize(t["period"])
    if (codes < 0).any():
        raise ValueError("every target needs a period")
    parsed = [parse_period(str(u), cal) for u in uniques]
    # Looked up per distinct period and metric, not per row.
    keys = pd.DataFrame(
        {
            "subject_type": np.where(is_rep, "rep", "team").astype(object),
            "subject_id": rep_id.where(is_rep, team_id),
            "period": np.array([p.label for p in parsed], dtype=object)[codes],
            "period_kind": np.array([p.kind for p in parsed], dtype=object)[codes],
            "metric": metric,
        }
    )
    return _Targets(
        frame=t,
        rep_id=rep_id,
        team_id=team_id,
        is_rep=is_rep,
        metric=metric,
        additive=np.array([METRICS[m].additive for m in metric_names], dtype=bool)[metric_codes],
        hib=np.array([METRICS[m].higher_is_better for m in metric_names], dtype=bool)[metric_codes],
        target_full=target_full,
        start=np.array([epoch_day(p.start) for p in parsed], dtype=np.int64)[codes],
        end=np.array([epoch_day(p.end) for p in parsed], dtype=np.int64)[codes],
        keys=keys,
    )


def _factors(
    tg: _Targets, reps: pd.DataFrame, cfg: GapConfig
) -> tuple[FloatArray, FloatArray, pd.Series, pd.Series, IntArray]:
    """(proration_factor, ramp_factor, target_note, target_derived_from, pace start)."""
    t = tg.frame
    proration, ramp, note, pace_start = target_factors(
        t,
        scalable=tg.is_rep & tg.additive,
        start=tg.start,
        end=tg.end,
        reps=reps,
        schedule=cfg.ramp_schedule,
        cal=cfg.cal,
    )
    derived_from = pd.Series([None] * len(t), dtype=object)
    if "target_derived_from" in t:
        # A derived target is the sum of its parts as each part is judged: its factors come
        # from them, not from this period's days.
        derived_from = t["target_derived_from"].astype(object)
        derived = derived_from.notna().to_numpy(dtype=bool)
        derived_from = derived_from.where(derived, None)
        proration = np.where(derived, floats(t["proration_factor"]), proration)
        ramp = np.where(derived, floats(t["ramp_factor"]), ramp)
        note = note.where(~derived, t["target_note"])
    return proration, ramp, note, derived_from, pace_start


def _progress(
    tg: _Targets,
    target: FloatArray,
    elapsed: FloatArray,
    raw_actual: FloatArray,
    started: BoolArray,
    ended: BoolArray,
) -> dict[str, FloatArray]:
    """``actual, gap, attainment, expected_to_date, pace_gap, projected`` (module docstring)."""
    additive, hib = tg.additive, tg.hib
    actual = np.where(additive & np.isnan(raw_actual), 0.0, raw_actual)
    gap = np.where(hib, target - actual, actual - target)
    attainment = np.where(
        target == 0, np.nan, np.where(hib, safe_div(actual, target), safe_div(target, actual))
    )
    expected = np.where(additive, target * elapsed, target)
    expected = np.where(started, expected, 0.0)
    pace_gap = np.where(hib, actual - expected, expected - actual)
    run_rate = np.divide(actual, elapsed, out=np.full(len(actual), np.nan), where=elapsed > 0)
    projected = np.where(additive, np.where(ended, actual, run_rate), actual)
    return {
        "actual": actual,
        "gap": gap,
        "attainment": attainment,
        "expected_to_date": expected,
        "pace_gap": pace_gap,
        "projected": projected,
    }


def _pipeline_figures(
    tg: _Targets,
    pipeline: pd.DataFrame | None,
    win_rates: pd.DataFrame | None,
    actual: FloatArray,
    target: FloatArray,
    projected: FloatArray,
    ended: BoolArray,
) -> dict[str, FloatArray]:
    """``open_pipeline, weighted_pipeline, projected_with_pipeline, coverage,
    coverage_needed`` (module docstring)."""
    metric, keys, n = tg.metric, tg.keys, len(tg.metric)
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
    remaining = target - actual
    return {
        "open_pipeline": open_pl,
        "weighted_pipeline": weighted,
        "projected_with_pipeline": np.where(movable, actual + weighted, projected),
        "coverage": np.where(
            movable & ~ended & (remaining > 0), safe_div(open_pl, remaining), np.nan
        ),
        "coverage_needed": np.where(
            ~ended & (win_rate > 0), safe_div(np.ones(n), win_rate), np.nan
        ),
    }


def _status(
    tg: _Targets,
    target: FloatArray,
    actual: FloatArray,
    expected: FloatArray,
    started: BoolArray,
    ended: BoolArray,
    cfg: GapConfig,
) -> ObjArray:
    """The first status rule of the module docstring that applies, per target."""
    hib = tg.hib
    has_actual = ~np.isnan(actual)
    met = has_actual & np.where(hib, actual >= target, actual <= target)
    with np.errstate(invalid="ignore"):
        behind = np.where(
            hib, actual < cfg.on_track_min * expected, actual * cfg.on_track_min > expected
        )
    status: ObjArray = np.select(
        [
            target == 0,
            tg.additive & hib & met,
            ended & met,
            ended,
            ~started,
            ~has_actual,
            behind,
        ],
        ["achieved", "achieved", "achieved", "missed", "on_track", "at_risk", "at_risk"],
        default="on_track",
    ).astype(object)
    return status
