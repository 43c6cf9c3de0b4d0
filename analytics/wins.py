"""Wins to recognise: the deals worth calling out in a period.

Coaching is not only about gaps; the same data names the big wins. A won deal is counted in
the period of its ``close_date`` (as ``won_revenue`` is, see :mod:`analytics.metrics`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

import numpy as np
import pandas as pd

from analytics._text import thousands
from analytics.currency import to_reporting_currency
from analytics.periods import FiscalCalendar, index_label, period_index

__all__ = ["WIN_COLUMNS", "wins"]

WIN_COLUMNS: Final[tuple[str, ...]] = (
    "period",
    "close_date",
    "amount",
    "percentile",
    "above_threshold",
    "top_percentile",
    "reason",
)


def wins(
    deals: pd.DataFrame,
    *,
    rates: Mapping[str, float],
    kind: str = "month",
    cal: FiscalCalendar = FiscalCalendar(),
    min_amount: float | None = None,
    top_percentile: float = 95.0,
    min_deals: int = 20,
    periods: Collection[str] | None = None,
    id_column: str = "deal_id",
    key: str = "rep_id",
) -> pd.DataFrame:
    """Won deals of each period that are big in absolute terms or for that period.

    ``deals`` needs ``id_column, key, amount, currency, status, close_date, is_deleted``. Over
    the won, not deleted deals with a close date, per period P of ``kind`` (by close_date),
    with amount = amount × rate(currency) and the n won deals of P:

    * ``percentile``      = 100 × (won deals of P with amount ≤ this one) / n
    * ``top_percentile``  = n ≥ ``min_deals`` and amount ≥ the ``top_percentile``-th percentile
      of P's amounts (linear interpolation); with fewer deals "top 5%" means nothing
    * ``above_threshold`` = ``min_amount`` is set and amount ≥ min_amount
    * a deal is a win when either flag is set; ``reason`` says which, with the numbers:
      "amount 75,969 ≥ 60,000; top 5% of 2026-04 won deals (percentile 97)"

    ``periods`` keeps only those labels. Columns: ``id_column, key`` then
    :data:`WIN_COLUMNS`, largest amount first within each period.
    """
    if not 0.0 < top_percentile <= 100.0:
        raise ValueError(f"top_percentile must be within (0, 100], got {top_percentile!r}")
    frame = _won_amounts(deals, rates=rates, kind=kind, cal=cal, id_column=id_column, key=key)
    if periods is not None:
        frame = frame[frame["period"].isin(list(periods))]
    grouped = frame.groupby("_index", sort=False)["amount"]
    n = grouped.transform("size")
    frame["percentile"] = 100.0 * grouped.rank(method="max") / n
    cutoff = grouped.transform("quantile", top_percentile / 100.0)
    frame["top_percentile"] = (n >= min_deals) & (frame["amount"] >= cutoff)
    if min_amount is None:
        frame["above_threshold"] = False
    else:
        frame["above_threshold"] = frame["amount"] >= min_amount
    out = frame[frame["top_percentile"] | frame["above_threshold"]].copy()
    out = out.sort_values(["_index", "amount"], ascending=[True, False], kind="stable")
    out["reason"] = _reasons(out, min_amount=min_amount, top_percentile=top_percentile)
    return out[[id_column, key, *WIN_COLUMNS]].reset_index(drop=True)


def _won_amounts(
    deals: pd.DataFrame,
    *,
    rates: Mapping[str, float],
    kind: str,
    cal: FiscalCalendar,
    id_column: str,
    key: str,
) -> pd.DataFrame:
    """The won, not deleted deals with a close date and an amount: ``id_column, key, _index,
    close_date, amount, period`` (amount in the reporting currency, _index the period's)."""
    live = ~deals["is_deleted"].to_numpy(dtype=bool)
    won = deals["status"].eq("won").to_numpy(dtype=bool, na_value=False)
    index = period_index(deals["close_date"], kind, cal)
    keep = live & won & (index >= 0)
    cand = deals[keep]
    amount = to_reporting_currency(cand["amount"], cand["currency"], rates).to_numpy(
        dtype="float64", na_value=np.nan
    )
    frame = pd.DataFrame(
        {
            id_column: cand[id_column].to_numpy(),
            key: cand[key].to_numpy(),
            "_index": index[keep],
            "close_date": pd.to_datetime(cand["close_date"]).dt.date.to_numpy(dtype=object),
            "amount": amount,
        }
    )
    frame = frame[frame["amount"].notna()]
    labels = {int(i): index_label(kind, int(i)) for i in pd.unique(frame["_index"])}
    frame["period"] = frame["_index"].map(labels).astype(object)
    return frame


def _reasons(out: pd.DataFrame, *, min_amount: float | None, top_percentile: float) -> pd.Series:
    """Why each win is one, with the numbers (see :func:`wins`)."""
    amount_text = thousands(out["amount"].to_numpy(dtype="float64"))
    share = 100.0 - top_percentile
    percentile_text = (
        pd.Series(np.floor(out["percentile"].to_numpy(dtype="float64")).astype(np.int64))
        .astype(str)
        .astype(object)
    )
    period_text = pd.Series(out["period"].to_numpy(dtype=object), dtype=object)
    top_text = (
        f"top {share:g}% of " + period_text + " won deals (percentile " + percentile_text + ")"
    )
    threshold_text = (
        "amount " + amount_text + " ≥ " + thousands(np.array([min_amount or 0.0]))[0]
        if min_amount is not None
        else pd.Series("", index=range(len(out)), dtype=object)
    )
    is_top = out["top_percentile"].to_numpy(dtype=bool)
    is_big = out["above_threshold"].to_numpy(dtype=bool)
    reason = np.where(
        is_big & is_top,
        (threshold_text + "; " + top_text).to_numpy(dtype=object),
        np.where(is_big, threshold_text.to_numpy(dtype=object), top_text.to_numpy(dtype=object)),
    )
    return pd.Series(reason, index=out.index, dtype=object)
