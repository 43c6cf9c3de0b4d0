"""CRM hygiene per rep: the pipeline data that cannot be trusted, and how much gets logged.

Gaps, pacing and pipeline coverage are only as good as the CRM behind them: an open deal whose
close date has passed, or that nobody has touched for a month, inflates the pipeline, and a rep
who logs few activities makes the funnel drivers unreadable. All timestamps are read as wall
clock time in ``tz`` (like :mod:`analytics.metrics`); a day is [00:00, 24:00) local time and
``as_of`` counts as a whole day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Final

import numpy as np
import pandas as pd

from analytics.currency import to_reporting_currency
from analytics.periods import period_of

__all__ = ["HYGIENE_COLUMNS", "hygiene"]

HYGIENE_COLUMNS: Final[tuple[str, ...]] = (
    "open_deals",
    "open_amount",
    "past_due_deals",
    "past_due_amount",
    "stale_deals",
    "stale_amount",
    "activities_in_weeks",
    "activities_per_week",
    "weeks_from",
    "weeks_to",
)


def _local_naive(values: pd.Series, tz: str) -> pd.Series:
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert(tz).dt.tz_localize(None)
    return stamps.astype("datetime64[ns]")


def _live(frame: pd.DataFrame) -> pd.Series:
    if "is_deleted" not in frame:
        return pd.Series(True, index=frame.index)
    return ~frame["is_deleted"].astype(bool)


def hygiene(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    as_of: date,
    rates: Mapping[str, float],
    stale_days: int = 30,
    weeks: int = 4,
    tz: str = "UTC",
    reps: pd.DataFrame | None = None,
    key: str = "rep_id",
) -> pd.DataFrame:
    """Hygiene figures per rep at ``as_of``.

    ``deals``: ``key, external_id, amount, currency, status, created_at, close_date`` (and
    ``is_deleted``; without it nothing is deleted). ``activities``: ``key, occurred_at,
    deal_external_id`` (and ``is_deleted``). Activities after ``as_of`` are ignored. A deal is
    *open* when its status is "open", it is not deleted and it was created by ``as_of``;
    amount = amount × rate(currency).

    * ``open_deals`` / ``open_amount``         = count / Σ amount of open deals
    * ``past_due_deals`` / ``past_due_amount`` = open deals with close_date < as_of
    * ``stale_deals`` / ``stale_amount``       = open deals with no linked activity (an
      activity whose ``deal_external_id`` is the deal's ``external_id``, any owner) at or after
      max(created_at, start of the day as_of − ``stale_days``)
    * ``activities_in_weeks`` = activities of the rep in the last ``weeks`` complete ISO weeks
      (the week containing ``as_of`` is complete only when as_of is its Sunday)
    * ``activities_per_week`` = activities_in_weeks / weeks
    * ``weeks_from`` / ``weeks_to`` = the first and last of those weeks ("2026-W14")

    Rows: one per rep in ``reps`` (``key`` column) when given, else per rep with any deal or
    activity; missing figures are 0. Columns: ``key`` then :data:`HYGIENE_COLUMNS`.
    """
    if stale_days < 0 or weeks < 1:
        raise ValueError("stale_days must be >= 0 and weeks >= 1")
    day_end = pd.Timestamp(datetime.combine(as_of + timedelta(days=1), time.min))
    acts = activities[_live(activities).to_numpy(dtype=bool)]
    occurred = _local_naive(acts["occurred_at"], tz)
    deal_figures = _deal_figures(
        deals,
        _last_touch(acts, occurred, day_end),
        as_of=as_of,
        day_end=day_end,
        rates=rates,
        stale_days=stale_days,
        tz=tz,
        key=key,
    )
    first_label, last_label, lo, hi = _complete_weeks(as_of, weeks)
    in_weeks = ((occurred >= lo) & (occurred < hi)).to_numpy(dtype=bool, na_value=False)
    logged = pd.Series(acts[key].to_numpy()[in_weeks]).value_counts()

    if reps is not None:
        index = pd.Index(pd.unique(reps[key].dropna()), name=key)
    else:
        seen = np.concatenate([deals[key].dropna().to_numpy(), activities[key].dropna().to_numpy()])
        index = pd.Index(pd.unique(seen), name=key)
    out = deal_figures.reindex(index).fillna(0)
    for column in ("open_deals", "past_due_deals", "stale_deals"):
        out[column] = out[column].astype(np.int64)
    for column in ("open_amount", "past_due_amount", "stale_amount"):
        out[column] = out[column].astype("float64")
    out["activities_in_weeks"] = logged.reindex(index).fillna(0).to_numpy(dtype=np.int64)
    out["activities_per_week"] = out["activities_in_weeks"] / weeks
    out["weeks_from"] = first_label
    out["weeks_to"] = last_label
    out = out.reset_index()
    return out[[key, *HYGIENE_COLUMNS]]


def _last_touch(acts: pd.DataFrame, occurred: pd.Series, day_end: pd.Timestamp) -> pd.Series:
    """Latest linked activity per deal (indexed by ``deal_external_id``), up to the end of
    as_of (``day_end``)."""
    by_then = (occurred < day_end).to_numpy(dtype=bool, na_value=False)
    linked = by_then & acts["deal_external_id"].notna().to_numpy(dtype=bool)
    return (
        pd.Series(
            occurred.to_numpy()[linked],
            index=acts["deal_external_id"].to_numpy()[linked],
            dtype="datetime64[ns]",
        )
        .groupby(level=0)
        .max()
    )


def _deal_figures(
    deals: pd.DataFrame,
    last_touch: pd.Series,
    *,
    as_of: date,
    day_end: pd.Timestamp,
    rates: Mapping[str, float],
    stale_days: int,
    tz: str,
    key: str,
) -> pd.DataFrame:
    """The open, past-due and stale deal counts and amounts per ``key`` (formulas in
    :func:`hygiene`), for the keys with an open deal."""
    stale_from = pd.Timestamp(datetime.combine(as_of - timedelta(days=stale_days), time.min))
    live_deals = deals[_live(deals).to_numpy(dtype=bool)]
    created = _local_naive(live_deals["created_at"], tz)
    is_open = live_deals["status"].eq("open").to_numpy(dtype=bool, na_value=False) & ~(
        created >= day_end
    ).to_numpy(dtype=bool, na_value=False)
    cand = live_deals[is_open]
    created = created[is_open]
    value = to_reporting_currency(cand["amount"], cand["currency"], rates).fillna(0.0)
    close = pd.to_datetime(cand["close_date"]).astype("datetime64[ns]")
    past_due = (close < pd.Timestamp(as_of)).to_numpy(dtype=bool, na_value=False)
    touched = pd.Series(
        last_touch.reindex(cand["external_id"].to_numpy()).to_numpy(dtype="datetime64[ns]"),
        index=cand.index,
    )
    since = created.where(created > stale_from, stale_from)
    stale = ~(touched >= since).to_numpy(dtype=bool, na_value=False)
    amounts = value.to_numpy(dtype="float64")
    return (
        pd.DataFrame(
            {
                key: cand[key].to_numpy(),
                "open_deals": np.ones(len(cand), dtype=np.int64),
                "open_amount": amounts,
                "past_due_deals": past_due.astype(np.int64),
                "past_due_amount": np.where(past_due, amounts, 0.0),
                "stale_deals": stale.astype(np.int64),
                "stale_amount": np.where(stale, amounts, 0.0),
            }
        )
        .groupby(key, sort=False)
        .sum()
    )


def _complete_weeks(as_of: date, weeks: int) -> tuple[str, str, pd.Timestamp, pd.Timestamp]:
    """The first and last labels of the last ``weeks`` complete ISO weeks, and their span
    [lo, hi) as local timestamps. The last complete week is this one if as_of is its Sunday,
    else the one before."""
    this_week = period_of(as_of, "week")
    last_week_end = this_week.end if as_of == this_week.end else this_week.start - timedelta(1)
    first_week_start = last_week_end - timedelta(days=7 * weeks - 1)
    first_label = period_of(first_week_start, "week").label
    last_label = period_of(last_week_end, "week").label
    lo = pd.Timestamp(datetime.combine(first_week_start, time.min))
    hi = pd.Timestamp(datetime.combine(last_week_end + timedelta(days=1), time.min))
    return first_label, last_label, lo, hi
