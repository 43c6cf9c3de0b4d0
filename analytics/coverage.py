"""What the rest of a period can still bring: open pipeline due in it, and trailing win rates.

Inputs of the pipeline figures of :func:`analytics.gaps.compute_gaps` (``open_pipeline``,
``weighted_pipeline``, ``coverage``, ``coverage_needed``); each function's formula is in its
docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from analytics._arrays import IntArray, epoch_day, epoch_days, floats
from analytics.currency import to_reporting_currency
from analytics.periods import FiscalCalendar, Period, parse_period, period_index

__all__ = ["open_pipeline", "trailing_win_rate"]


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
    days, missing = epoch_days(deals["close_date"])
    a = epoch_day(as_of)
    due = live & is_open & ~missing & (days >= a) & deals[key].notna().to_numpy(dtype=bool)
    cand = deals[due]
    value = floats(to_reporting_currency(cand["amount"], cand["currency"], rates).fillna(0.0))
    if "probability" in cand:
        prob = np.nan_to_num(floats(cand["probability"]), nan=0.0)
    else:
        prob = np.zeros(len(cand))
    cand_days = days[due]
    order = np.argsort(cand_days, kind="stable")
    sorted_days = cand_days[order]

    # One binary search per period on the sorted close dates instead of a mask per period.
    picks: list[IntArray] = []
    labels: list[str] = []
    for p in dict.fromkeys(periods):
        lo = np.searchsorted(sorted_days, max(a, epoch_day(p.start)), side="left")
        hi = np.searchsorted(sorted_days, epoch_day(p.end), side="right")
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
