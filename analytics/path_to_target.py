"""The path to target (a reverse funnel): what closes a subject's gap at its own rates, and
whether it still can.

Inputs are plain frames (see :func:`pooled_rates` and :func:`path_to_target`); everything here
is pure and vectorised over the gap rows.

Rows. A path is worked out for the gap rows of ``won_revenue`` and ``won_deals`` (the metrics
open deals can move) whose period is still open (``as_of`` ≤ ``period_end``) and whose ``gap``
is > 0. Every other row gets NaN figures, None flags and no sentence.

Rates (:func:`pooled_rates`), per subject, pooled over the ``months`` fiscal months ending with
the month containing ``as_of`` (the same pooling as the month rows of
:func:`analytics.drivers.driver_table`, whose ``{d}_value`` columns they equal for a rep; a team
pools its own monthly rows, which pool its reps' days on it):

* ``deal_size``  = Σ won_revenue / Σ won_deals
* ``win_rate``   = Σ won_deals / Σ closed_deals
* ``throughput`` = Σ closed_deals / Σ opportunities  (deals closed per deal created)
* ``cycle_days`` = Σ (sales_cycle_days × won_deals) / Σ won_deals over the months with a cycle
  (won-deal-weighted mean of the months' median days from created to won)

each NaN when its denominator is 0 (a subject without rows in the window gets NaN for all).

Counts needed (the smallest whole number that is enough at the subject's rates; a quotient is
rounded to 9 decimals before ``ceil`` so float noise such as 4.0000000001 does not add one):

* ``wins_needed``          = ceil(gap / deal_size) for won_revenue (NaN unless deal_size > 0),
                             ceil(gap) for won_deals
* ``closes_needed``        = ceil(wins_needed / win_rate)                (NaN unless win_rate > 0)
* ``opportunities_needed`` = ceil(wins_needed / (win_rate × throughput)) (NaN unless both > 0)

Time left (``as_of`` counts as a day already gone, as in :mod:`analytics.gaps`):

* ``days_left``         = period_end − as_of, calendar days
* ``working_days_left`` = Mon–Fri days after ``as_of`` up to ``period_end``, minus ``holidays``
  (:func:`analytics.pacing.working_days`)
* ``new_opportunities_can_close`` = cycle_days ≤ days_left (None when the cycle is unknown): an
  opportunity created now closes after the period ends when the cycle is longer than the days
  left, so only existing pipeline can still count. The cycle is in calendar days, so it is
  compared with calendar days; working days are shown for planning.

Pipeline (``pipeline``: :func:`analytics.coverage.open_pipeline`, the open deals due from
``as_of`` to the period's end; none = 0): ``open_deals``, ``open_amount``, and, in the metric's
unit, ``weighted_pipeline`` = weighted_amount (won_revenue) or weighted_deals (won_deals, the
expected wins) and ``open_pipeline`` = open_amount or open_deals (all of it won).
``pipeline_covers`` = weighted_pipeline ≥ gap.

``reachable``, first rule that applies:

1. ``on_pipeline``: ``pipeline_covers`` (the open deals due, at their probabilities, are
   expected to close the gap).
2. ``needs_new_pipeline``: ``new_opportunities_can_close`` is True (the pipeline falls short
   and new opportunities created now can still close in the period).
3. ``out_of_reach``: ``new_opportunities_can_close`` is False and open_pipeline < gap (nothing
   new can close in time and even winning every open deal due falls short).
4. ``on_pipeline``: ``new_opportunities_can_close`` is False (winning enough of the open deals
   due would close it, above their probabilities: ``pipeline_covers`` is False).
5. None: the cycle is unknown, so whether new opportunities can close in time is unknown.

``path_to_target`` is the same in a short sentence, e.g. "38k short: needs 4 more wins from
11 open deals worth 38k (21k weighted); new opportunities won't close before 30 June at a
41-day cycle", saying why a figure is unknown when it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import (
    EPOCH_ORDINAL,
    BoolArray,
    FloatArray,
    ObjArray,
    as_int64,
    epoch_day,
    floats,
)
from analytics._driver_pool import SUMS, pooled, summable
from analytics.pacing import working_days
from analytics.periods import FiscalCalendar, index_label, period_index

__all__ = [
    "PATH_COLUMNS",
    "PATH_METRICS",
    "RATE_COLUMNS",
    "REACHABLE",
    "path_to_target",
    "pooled_rates",
]

PATH_METRICS: Final[tuple[str, ...]] = ("won_revenue", "won_deals")
REACHABLE: Final[tuple[str, ...]] = ("on_pipeline", "needs_new_pipeline", "out_of_reach")
RATE_COLUMNS: Final[tuple[str, ...]] = ("deal_size", "win_rate", "throughput", "cycle_days")
PATH_COLUMNS: Final[tuple[str, ...]] = (
    "wins_needed",
    "closes_needed",
    "opportunities_needed",
    "days_left",
    "working_days_left",
    *RATE_COLUMNS,
    "new_opportunities_can_close",
    "open_deals",
    "open_amount",
    "open_pipeline",
    "weighted_pipeline",
    "pipeline_covers",
    "reachable",
    "path_to_target",
)
_SUBJECT: Final[list[str]] = ["subject_type", "subject_id"]


def pooled_rates(
    monthly: pd.DataFrame, *, as_of: date, cal: FiscalCalendar, months: int = 12
) -> pd.DataFrame:
    """Each subject's :data:`RATE_COLUMNS` pooled over the ``months`` months ending with the one
    containing ``as_of`` (formulas in the module docstring).

    ``monthly``: a monthly :func:`analytics.metrics.period_metrics` frame with ``subject_type,
    subject_id, period_index`` (the month index) and ``won_revenue, won_deals, closed_deals,
    opportunities, sales_cycle_days``. Columns: ``subject_type, subject_id`` and
    :data:`RATE_COLUMNS`, one row per subject with a row in the window.
    """
    current = int(period_index(pd.Series([pd.Timestamp(as_of)]), "month", cal)[0])
    idx = monthly["period_index"].to_numpy(dtype=np.int64)
    window = monthly[(idx > current - months) & (idx <= current)]
    # The drivers' own pooling (analytics._driver_pool), so a rate here is the driver's.
    sums = pd.DataFrame(summable(window)).assign(
        subject_type=window["subject_type"].to_numpy(dtype=object),
        subject_id=as_int64(window["subject_id"]).to_numpy(),
    )
    s = sums.groupby(_SUBJECT, sort=True).sum()
    rates = pooled({c: s[c].to_numpy(dtype="float64") for c in SUMS})
    out = pd.DataFrame(
        {
            "deal_size": rates["deal_size"],
            "win_rate": rates["win_rate"],
            "throughput": rates["throughput"],
            "cycle_days": rates["cycle"],
        },
        index=s.index,
    ).reset_index()
    out["subject_id"] = as_int64(out["subject_id"])
    return out[[*_SUBJECT, *RATE_COLUMNS]]


def _ceil(x: FloatArray) -> FloatArray:
    """ceil, after rounding away float noise (9 decimals); NaN stays NaN."""
    out: FloatArray = np.ceil(np.round(x, 9))
    return out


def _positive_div(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den where den > 0, NaN elsewhere (a zero rate needs infinitely many)."""
    out: FloatArray = np.full(len(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _lookup(rows: pd.DataFrame, frame: pd.DataFrame, on: list[str], what: str) -> np.ndarray:
    """The position in ``frame`` of each of ``rows`` by ``on`` (−1: none)."""
    if frame.duplicated(on).any():
        raise ValueError(f"{what} has more than one row for the same {', '.join(on)}")
    index = pd.MultiIndex.from_frame(frame[on])
    at: np.ndarray = index.get_indexer(pd.MultiIndex.from_frame(rows[on]))
    return at


def _take(frame: pd.DataFrame, column: str, at: np.ndarray, missing: float) -> FloatArray:
    out: FloatArray = np.full(len(at), missing)
    found = at >= 0
    if found.any():  # (no pipeline frame at all has no columns to read)
        out[found] = floats(frame[column])[at[found]]
    return out


def path_to_target(
    gaps: pd.DataFrame,
    rates: pd.DataFrame,
    pipeline: pd.DataFrame | None,
    *,
    as_of: date,
    cal: FiscalCalendar = FiscalCalendar(),
    holidays: tuple[date, ...] = (),
    rate_months: int = 12,
) -> pd.DataFrame:
    """Each gap row's path to target: :data:`PATH_COLUMNS`, aligned with ``gaps`` (same index).

    ``gaps``: :func:`analytics.gaps.compute_gaps` rows (``subject_type, rep_id, team_id,
    metric, period, period_end, gap``). ``rates``: :func:`pooled_rates` (``subject_type,
    subject_id`` and :data:`RATE_COLUMNS`). ``pipeline``: :func:`analytics.coverage.
    open_pipeline` frames with ``subject_type, subject_id`` instead of the key (None: no
    pipeline). ``rate_months`` and ``cal`` only name the rates' window in the sentences.
    Formulas, the ``reachable`` rules and the rows that get a path: the module docstring.
    """
    out = _empty(gaps.index)
    rows = gaps.reset_index(drop=True)
    is_rep = rows["subject_type"].to_numpy(dtype=object) == "rep"
    keys = pd.DataFrame(
        {
            "subject_type": rows["subject_type"].to_numpy(dtype=object),
            "subject_id": as_int64(rows["rep_id"]).where(is_rep, as_int64(rows["team_id"])),
            "period": rows["period"].to_numpy(dtype=object),
        }
    )
    end = rows["period_end"].to_numpy(dtype="datetime64[D]")
    a = epoch_day(as_of)
    gap = floats(rows["gap"])
    metric = rows["metric"].to_numpy(dtype=object)
    applies = np.isin(metric, PATH_METRICS) & (end.astype(np.int64) >= a) & (gap > 0)
    if not applies.any():
        return out
    sel = np.flatnonzero(applies)
    k = keys.iloc[sel].reset_index(drop=True)
    figures = _figures(
        k,
        gap[sel],
        metric[sel] == "won_revenue",
        end[sel],
        rates,
        pipeline,
        as_of=as_of,
        holidays=holidays,
    )
    current = int(period_index(pd.Series([pd.Timestamp(as_of)]), "month", cal)[0])
    window = f"in the {rate_months} months to {index_label('month', current)}"
    figures["path_to_target"] = _sentences(
        figures, gap[sel], metric[sel] == "won_revenue", end[sel], as_of, window
    )
    for c in PATH_COLUMNS:
        column = out[c].to_numpy(copy=True)
        column[sel] = figures[c]
        # Object, not pandas' string dtype: None must stay None (JSON null), not become NaN.
        out[c] = pd.Series(column, index=out.index, dtype=column.dtype)
    return out


def _empty(index: pd.Index) -> pd.DataFrame:
    n = len(index)
    out = pd.DataFrame(index=index)
    for c in PATH_COLUMNS:
        kind = (
            object
            if c
            in ("new_opportunities_can_close", "pipeline_covers", "reachable", "path_to_target")
            else np.float64
        )
        out[c] = pd.Series(np.full(n, None if kind is object else np.nan), index=index, dtype=kind)
    return out


def _figures(
    keys: pd.DataFrame,
    gap: FloatArray,
    revenue: BoolArray,
    end: np.ndarray,
    rates: pd.DataFrame,
    pipeline: pd.DataFrame | None,
    *,
    as_of: date,
    holidays: tuple[date, ...],
) -> dict[str, np.ndarray]:
    """The figures of the applicable rows (module docstring), column by column."""
    r = rates.assign(subject_id=as_int64(rates["subject_id"]))
    at = _lookup(keys, r, _SUBJECT, "rates")
    f: dict[str, np.ndarray] = {c: _take(r, c, at, np.nan) for c in RATE_COLUMNS}
    if pipeline is None:
        pipe = pd.DataFrame(columns=[*_SUBJECT, "period"])
        at_pipe = np.full(len(keys), -1)
    else:
        pipe = pipeline.assign(subject_id=as_int64(pipeline["subject_id"]))
        at_pipe = _lookup(keys, pipe, [*_SUBJECT, "period"], "pipeline")
    for c in ("open_deals", "open_amount", "weighted_amount", "weighted_deals"):
        f[c] = _take(pipe, c, at_pipe, 0.0)

    f["wins_needed"] = np.where(revenue, _ceil(_positive_div(gap, f["deal_size"])), _ceil(gap))
    f["closes_needed"] = _ceil(_positive_div(f["wins_needed"], f["win_rate"]))
    funnel = np.where(f["win_rate"] > 0, f["win_rate"] * f["throughput"], np.nan)
    f["opportunities_needed"] = _ceil(_positive_div(f["wins_needed"], funnel))

    a = np.datetime64(as_of, "D")
    f["days_left"] = (end - a).astype(np.int64).astype(np.float64)
    f["working_days_left"] = working_days(
        np.full(len(end), a + 1), end + 1, holidays=holidays
    ).astype(np.float64)
    known_cycle = ~np.isnan(f["cycle_days"])
    can_close = f["cycle_days"] <= f["days_left"]
    f["open_pipeline"] = np.where(revenue, f["open_amount"], f["open_deals"])
    f["weighted_pipeline"] = np.where(revenue, f["weighted_amount"], f["weighted_deals"])
    covers = f["weighted_pipeline"] >= gap
    short = f["open_pipeline"] < gap
    reachable = np.select(
        [covers, known_cycle & can_close, known_cycle & short, known_cycle],
        ["on_pipeline", "needs_new_pipeline", "out_of_reach", "on_pipeline"],
        default="",
    ).astype(object)
    reachable[reachable == ""] = None
    f["reachable"] = reachable
    f["new_opportunities_can_close"] = _flags(can_close, known_cycle)
    f["pipeline_covers"] = _flags(covers, np.ones(len(covers), dtype=bool))
    return f


def _flags(values: BoolArray, known: BoolArray) -> ObjArray:
    """Python booleans, None where unknown (stored as JSON true / false / null)."""
    out: ObjArray = np.where(values, True, False).astype(object)
    out[~known] = None
    return out


# ------------------------------------------------------------------------------ sentences


def _texts(values: FloatArray, fmt: Callable[[float], str]) -> ObjArray:
    """``fmt`` of each value, called once per distinct value (a sentence's numbers are rounded
    to few distinct ones), not once per row; "n/a" for NaN."""
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values)
    out: ObjArray = np.full(len(values), "n/a", dtype=object)
    uniques, inverse = np.unique(values[known], return_inverse=True)
    out[known] = np.array([fmt(float(v)) for v in uniques], dtype=object)[inverse.reshape(-1)]
    return out


def _short(v: float) -> str:
    if v < 1e3:
        return f"{v:,.0f}"
    if v < 1e4:
        return f"{v / 1e3:.1f}".removesuffix(".0") + "k"
    if v < 999_500:
        return f"{v / 1e3:,.0f}k"
    return f"{v / 1e6:,.1f}".removesuffix(".0") + "M"


def _amount(x: FloatArray) -> ObjArray:
    """Short amounts: 950, 9.5k, 38k, 1.2M (non-negative), rounded to what they show first."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    shown = np.select(
        [x < 1e3, x < 1e4, x < 999_500],
        [np.round(x), np.round(x, -2), np.round(x, -3)],
        default=np.round(x, -5),
    )
    return _texts(shown, _short)


def _whole(x: FloatArray) -> ObjArray:
    """Whole numbers with thousands separators ("1,234")."""
    return _texts(np.round(x), lambda v: f"{v:,.0f}")


def _count(x: FloatArray, one: str, many: str) -> ObjArray:
    """ "1 win", "4 wins"."""
    words: ObjArray = np.where(x == 1, " " + one, " " + many).astype(object)
    out: ObjArray = _whole(x) + words
    return out


def _day_names(end: np.ndarray, as_of: date) -> ObjArray:
    """ "30 June", with the year when it is not as_of's ("31 March 2027")."""
    days = end.astype("datetime64[D]").astype(np.int64).astype(np.float64)

    def name(v: float) -> str:
        day = date.fromordinal(int(v) + EPOCH_ORDINAL)
        text = f"{day.day} {day:%B}"
        return text if day.year == as_of.year else f"{text} {day.year}"

    return _texts(days, name)


def _sentences(
    f: dict[str, np.ndarray],
    gap: FloatArray,
    revenue: BoolArray,
    end: np.ndarray,
    as_of: date,
    window: str,
) -> ObjArray:
    """The ``path_to_target`` sentence of each applicable row, built over whole columns
    (object arrays: numpy joins their strings without pandas' per-operation overhead)."""
    by = _day_names(end, as_of)
    wins = f["wins_needed"]
    needs = np.where(
        np.isnan(wins),
        "wins needed unknown (no won deal " + window + ")",
        "needs " + _count(np.nan_to_num(wins), "more win", "more wins"),
    )
    lead = np.where(revenue, _amount(gap) + " short: ", "")
    deals = f["open_deals"]
    pipeline_text = np.where(
        revenue,
        " worth " + _amount(f["open_amount"]) + " (" + _amount(f["weighted_amount"]) + " weighted)",
        " (" + _texts(np.round(f["weighted_deals"], 1), lambda v: f"{v:.1f}") + " wins expected)",
    )
    pipeline = np.where(
        deals > 0,
        " from " + _count(deals, "open deal", "open deals") + pipeline_text,
        ", with no open deal due by " + by,
    )
    # Whole days up: "can close" is cycle ≤ days left (whole days), so the text agrees with it.
    cycle = _whole(np.ceil(f["cycle_days"]))
    closes = _count(np.nan_to_num(f["closes_needed"]), "close", "closes")
    opps = _count(np.nan_to_num(f["opportunities_needed"]), "opportunity", "opportunities")
    rate = _whole(f["win_rate"] * 100.0)
    new_count = np.select(
        [~np.isnan(f["opportunities_needed"]), np.isnan(f["wins_needed"])],
        [": about " + opps + " (" + closes + " at a " + rate + "% win rate)", ""],
        default=_why_no_opportunities(f, window),
    )
    can = f["new_opportunities_can_close"]
    timing = np.select(
        [can == True, can == False],  # noqa: E712 (object arrays of True / False / None)
        [
            "new opportunities can still close by "
            + by
            + " at a "
            + cycle
            + "-day cycle"
            + new_count,
            "new opportunities won't close before " + by + " at a " + cycle + "-day cycle",
        ],
        default="sales cycle unknown (no won deal " + window + ")",
    )
    prefix = np.where(f["reachable"] == "out_of_reach", "out of reach: ", "")
    text: ObjArray = (
        prefix.astype(object) + lead + needs.astype(object) + pipeline + "; " + timing
    ).astype(object)
    return text


def _why_no_opportunities(f: dict[str, np.ndarray], window: str) -> ObjArray:
    """Why opportunities needed is unknown when the wins needed are known."""
    win_rate, throughput = f["win_rate"], f["throughput"]
    why: ObjArray = np.select(
        [np.isnan(win_rate), win_rate == 0, np.isnan(throughput)],
        [
            "; closes needed unknown (no closed deal " + window + ")",
            "; closes needed unknown (no win among the deals closed " + window + ")",
            "; opportunities needed unknown (no opportunity created " + window + ")",
        ],
        default="; opportunities needed unknown (no opportunity closed " + window + ")",
    ).astype(object)
    return why
