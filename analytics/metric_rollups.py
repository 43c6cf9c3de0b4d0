"""Metrics frames combined without reading the records again.

From :func:`analytics.metrics.period_metrics` frames: figures pooled over groups of subjects
(:func:`rollup_metrics`), fiscal months summed into quarters and years
(:func:`rollup_periods`), and frames brought up to date after some records changed
(:func:`patch_metrics`, :func:`shift_metrics`). Additive figures are sums; the ratios are then
derived from the sums (:func:`analytics.metrics.finish_ratios`); a median does not combine, so
``sales_cycle_days`` comes from the won deals (:func:`won_cycles`, :func:`cycle_medians`).
Each function's formula is in its docstring.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import IntArray
from analytics._records import cycle_days, live_rows, period_indices, rows_at
from analytics.metrics import ADDITIVE_COLUMNS, COUNT_COLUMNS, finish_metrics
from analytics.periods import MISSING_INDEX, FiscalCalendar, period_from_index, period_index

__all__ = [
    "ACTIVITY_PART",
    "DEAL_PART",
    "cycle_medians",
    "month_to_period",
    "patch_metrics",
    "rollup_metrics",
    "rollup_periods",
    "shift_metrics",
    "won_cycles",
]

_ROLLUP_KINDS = ("month", "quarter", "year")


def month_to_period(
    month_index: npt.ArrayLike, kind: str, cal: FiscalCalendar = FiscalCalendar()
) -> IntArray:
    """Index of the ``kind`` (month, quarter or year) period containing each fiscal month.

    Fiscal quarters and years are unions of whole fiscal months in both calendar kinds, so
    a record's quarter is the quarter of its month: month index m maps to the period that
    contains the month's first day.
    """
    if kind not in _ROLLUP_KINDS:
        raise ValueError(f"months roll up to {_ROLLUP_KINDS}, not {kind!r}")
    months = np.asarray(month_index, dtype=np.int64)
    if kind == "month" or not len(months):
        return months.copy()
    # A lookup table over the span of months (a few dozen), rather than a sort of the rows.
    first, last = int(months.min()), int(months.max())
    if last - first > 1200:
        distinct, inverse = np.unique(months, return_inverse=True)
    else:
        distinct, inverse = np.arange(first, last + 1), months - first
    starts = pd.Series(
        pd.to_datetime([period_from_index("month", int(m), cal).start for m in distinct])
    )
    out: IntArray = period_index(starts, kind, cal)[inverse]
    return out


def won_cycles(
    deals: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    tz: str = "UTC",
    key: str = "rep_id",
) -> pd.DataFrame:
    """The deal-level input of ``sales_cycle_days``: one row per live won deal whose
    ``close_date`` is in a period, ``key, period_index, cycle_days`` with
    cycle_days = (closed_at, else close_date) − created_at in days (reporting timezone);
    first a ``deal_id`` column too when ``deals`` has one."""
    live = live_rows(deals)
    won = rows_at(deals["status"], live).eq("won").to_numpy(dtype=bool, na_value=False)
    idx = period_indices(rows_at(deals["close_date"], live), kind, cal)
    picked = np.flatnonzero(won & (idx != MISSING_INDEX))
    rows = picked if live is None else live[picked]
    ids = {"deal_id": deals["deal_id"].to_numpy()[rows]} if "deal_id" in deals else {}
    return pd.DataFrame(
        {
            **ids,
            key: deals[key].to_numpy()[rows],
            "period_index": idx[picked].astype(np.int64),
            "cycle_days": cycle_days(deals, rows, tz),
        }
    )


def cycle_medians(won: pd.DataFrame, *, key: str = "rep_id") -> pd.DataFrame:
    """``sales_cycle_days`` per (``key``, period) of a :func:`won_cycles` frame (possibly
    re-keyed or re-periodised): median of cycle_days over the group's deals, NaN skipped.
    Columns: ``key, period_index, sales_cycle_days``."""
    grouped = won.groupby([key, "period_index"], sort=True)["cycle_days"].median()
    return grouped.rename("sales_cycle_days").reset_index()


def _sum_rows(rows: pd.DataFrame, key: str, kind: str, cycles: pd.DataFrame | None) -> pd.DataFrame:
    """Σ of the additive columns per (key, period_index), medians joined, ratios derived."""
    sums = rows.groupby([key, "period_index"], sort=True)[list(ADDITIVE_COLUMNS)].sum()
    out = sums.reset_index()
    if cycles is not None and len(out):
        out = out.merge(
            cycles[[key, "period_index", "sales_cycle_days"]],
            on=[key, "period_index"],
            how="left",
        )
    return finish_metrics(out, key, kind)


def rollup_metrics(
    metrics: pd.DataFrame,
    mapping: pd.DataFrame,
    *,
    kind: str,
    key: str = "rep_id",
    to_key: str = "team_id",
    cycles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pooled figures of groups of subjects (teams of reps) from the subjects' own rows.

    ``metrics`` is a :func:`period_metrics` frame keyed by ``key``; ``mapping`` has one row
    per (``key``, ``to_key``) pair (a rep may count for several teams: its own and every team
    above it). Per (``to_key``, period), for each additive column c (:data:`ADDITIVE_COLUMNS`):

        c(group, P) = Σ w(subject, group, P) × c(subject, P) over the subjects mapped to it

    where w is 1, or, when ``mapping`` is dated (``period_index`` and ``weight`` columns: the
    share of the period's days the subject was in the group), that share: a subject who moved
    inside a period counts for each group for its days there (so a count can be fractional).
    Then the ratios are derived from those sums as :func:`period_metrics` does
    (:func:`finish_ratios`). A median does not roll up: ``sales_cycle_days`` comes from
    ``cycles`` (:func:`cycle_medians` of the group's won deals, keyed by ``to_key``), NaN
    without. Undated, this equals :func:`period_metrics` on frames that carry one row per
    record and group, without duplicating any record. Columns as :func:`period_metrics`,
    keyed by ``to_key``.
    """
    dated = "period_index" in mapping
    on = [key, "period_index"] if dated else [key]
    pairs = mapping[[*on, to_key, *(["weight"] if dated else [])]]
    rows = metrics[[key, "period_index", *ADDITIVE_COLUMNS]].merge(pairs, on=on, how="inner")
    if dated:
        weight = rows.pop("weight").to_numpy(dtype="float64")
        if (weight != 1.0).any():
            rows[list(ADDITIVE_COLUMNS)] = rows[list(ADDITIVE_COLUMNS)].mul(weight, axis=0)
    return _sum_rows(rows.drop(columns=key), to_key, kind, cycles)


def rollup_periods(
    monthly: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    key: str = "rep_id",
    cycles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Quarter or year figures from a monthly :func:`period_metrics` frame.

    Per (``key``, period P of ``kind``), for each additive column c:

        c(key, P) = Σ c(key, m) over the fiscal months m of P    (:func:`month_to_period`)

    then the ratios as :func:`period_metrics` (:func:`finish_ratios`); ``sales_cycle_days``
    comes from ``cycles`` (:func:`cycle_medians` of :func:`won_cycles` mapped to ``kind``),
    NaN without. Equals ``period_metrics(kind=kind)`` on the records of ``monthly``.
    """
    rows = monthly[[key, "period_index", *ADDITIVE_COLUMNS]].copy()
    rows["period_index"] = month_to_period(rows["period_index"].to_numpy(), kind, cal)
    return _sum_rows(rows, key, kind, cycles)


# The columns of a period_metrics row that deals decide, and those activities decide.
DEAL_PART = ("won_revenue", "closed_value", "pipeline_created", *COUNT_COLUMNS[:4])
ACTIVITY_PART = COUNT_COLUMNS[4:]


def patch_metrics(
    base: pd.DataFrame,
    *,
    deals: pd.DataFrame,
    deals_stale: npt.ArrayLike,
    activities: pd.DataFrame,
    activities_stale: npt.ArrayLike,
    kind: str,
    key: str = "rep_id",
) -> pd.DataFrame:
    """A :func:`period_metrics` frame with some cells' deal or activity figures replaced.

    ``base`` is a :func:`period_metrics` frame (stored figures); ``deals_stale`` and
    ``activities_stale`` flag its rows (cells) whose deal figures (:data:`DEAL_PART` and
    ``sales_cycle_days``), or activity figures (:data:`ACTIVITY_PART`), are out of date.
    ``deals`` and ``activities`` are :func:`period_metrics` frames of exactly the stale cells
    (of deals only and of activities only: a stale cell without a row there has none of
    those records now). Per cell (``key``, period):

        deal figures     = deals' row if the cell's deal figures are stale, else base's
        activity figures = activities' row if stale, else base's

    then the ratios as :func:`period_metrics` (:func:`finish_ratios`). A cell keeps a row
    when it has closed deals, opportunities or activities, as in :func:`period_metrics`.
    Equals ``period_metrics`` on the records when the fresh frames and the kept base figures
    are those of the records.
    """
    cell = [key, "period_index"]
    deal_stale = np.asarray(deals_stale, dtype=bool)
    activity_stale = np.asarray(activities_stale, dtype=bool)
    deal_rows = pd.concat(
        [
            base.loc[~deal_stale, [*cell, *DEAL_PART, "sales_cycle_days"]],
            deals[[*cell, *DEAL_PART, "sales_cycle_days"]],
        ],
        ignore_index=True,
    )
    activity_rows = pd.concat(
        [base.loc[~activity_stale, [*cell, *ACTIVITY_PART]], activities[[*cell, *ACTIVITY_PART]]],
        ignore_index=True,
    )
    rows = pd.concat(
        [deal_rows.drop(columns="sales_cycle_days"), activity_rows], ignore_index=True
    ).fillna({c: 0 for c in ADDITIVE_COLUMNS})
    for col in ADDITIVE_COLUMNS:
        if col not in rows:
            rows[col] = 0
    out = _sum_rows(rows, key, kind, deal_rows[[*cell, "sales_cycle_days"]])
    present = (out["closed_deals"] + out["opportunities"] + out["activities"]) > 0
    return out[present.to_numpy()].reset_index(drop=True)


def shift_metrics(
    base: pd.DataFrame,
    *,
    added: pd.DataFrame,
    removed: pd.DataFrame,
    cycles: pd.DataFrame,
    kind: str,
    key: str = "rep_id",
) -> pd.DataFrame:
    """A :func:`period_metrics` frame after some records changed, without its other records.

    ``added`` and ``removed`` are :func:`period_metrics` frames of the changed records as
    they are now and as ``base`` counted them. Per cell (``key``, period):

        additive figures = base + added − removed
        sales_cycle_days = ``cycles``' figure for a cell of ``added`` or ``removed`` (a
                           median does not shift: the caller takes it from the won deals
                           the cell has now; NaN when it has none), else base's

    A sum is exactly 0 once nothing it counts is left (no drift from adding and taking back
    the same amounts); then the ratios as :func:`period_metrics` (:func:`finish_ratios`),
    and a cell keeps a row while it has closed deals, opportunities or activities. Equals
    ``period_metrics`` on the records, up to float rounding, when ``base`` does.
    """
    cell = [key, "period_index"]
    counts = [c for c in ADDITIVE_COLUMNS if c != "closed_deals"]
    # (An empty frame's key column may be of objects: it must not make the keys objects.)
    changes = [f for f in (added, removed) if len(f)]
    if not changes:
        return base
    touched = pd.concat([f[cell] for f in changes], ignore_index=True).drop_duplicates()
    # Only the touched cells are summed again; the others pass through as they are.
    hit = pd.MultiIndex.from_frame(base[cell]).isin(pd.MultiIndex.from_frame(touched))
    parts = [
        base.loc[hit, [*cell, *counts]],
        added[[*cell, *counts]],
        removed[[*cell, *counts]].assign(**{c: -removed[c] for c in counts}),
    ]
    signed = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out = signed.groupby(cell, sort=True)[counts].sum().reset_index()
    for value, count in (
        ("won_revenue", "won_deals"),
        ("pipeline_created", "opportunities"),
    ):
        out.loc[out[count] == 0, value] = 0.0
    out.loc[out["won_deals"] + out["lost_deals"] == 0, "closed_value"] = 0.0
    median = touched.merge(cycles[[*cell, "sales_cycle_days"]], on=cell, how="left")
    out = finish_metrics(out.merge(median, on=cell, how="left"), key, kind)
    present = (out["closed_deals"] + out["opportunities"] + out["activities"]) > 0
    merged = pd.concat([base[~hit], out[present.to_numpy()]], ignore_index=True)
    return merged.sort_values(cell, ignore_index=True)
