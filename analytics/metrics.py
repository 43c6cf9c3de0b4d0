"""The metric catalogue and the per-subject, per-period metrics frame.

Input frames (one row per record; deleted records may be present, flagged ``is_deleted``):

* deals: ``rep_id, amount, currency, status ('open'|'won'|'lost'), created_at (UTC),
  close_date (date), closed_at (UTC or NaT), is_deleted``
* activities: ``rep_id, type ('call'|'email'|'meeting'|'task'), occurred_at (UTC), is_deleted``

Formulas (``docs/metrics.md`` is the long form). "In the period" means: by ``close_date`` for
won/lost figures, by ``created_at`` for pipeline and opportunities, by ``occurred_at`` for
activities; timestamps are read in the reporting timezone. Deleted records never count; open
deals count only in pipeline figures. Amounts are converted with ``rate(currency)``.

* ``won_revenue``      = Σ amount × rate over won deals closed in the period
* ``won_deals``        = count of won deals closed in the period
* ``lost_deals``       = count of lost deals closed in the period
* ``closed_deals``     = won_deals + lost_deals
* ``closed_value``     = Σ amount × rate over won and lost deals closed in the period
* ``opportunities``    = count of deals created in the period (any status)
* ``pipeline_created`` = Σ amount × rate over deals created in the period (any status)
* ``activities``       = count of activities in the period; ``calls``, ``emails``,
  ``meetings``, ``tasks`` count one type each
* ``win_rate``         = won_deals / closed_deals (NaN when nothing closed)
* ``win_rate_value``   = won_revenue / closed_value (NaN when closed_value is 0)
* ``avg_deal_size``    = won_revenue / won_deals (NaN when nothing was won)
* ``sales_cycle_days`` = median over won deals closed in the period of
  (closed_at, else close_date) − created_at, in days
* ``sales_velocity``   = opportunities × win_rate × avg_deal_size / sales_cycle_days
  (revenue per day the current funnel produces)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.periods import MISSING_INDEX, FiscalCalendar, index_label, period_index


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "currency" | "count" | "ratio" | "days" | "currency_per_day"
    higher_is_better: bool
    additive: bool  # sums over reps and over sub-periods
    inputs: tuple[str, ...]  # the columns its formula reads
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "won_revenue",
            "currency",
            True,
            True,
            ("won_deals",),
            "Revenue of deals won (closed) in the period",
        ),
        Metric("won_deals", "count", True, True, (), "Deals won in the period"),
        Metric(
            "pipeline_created",
            "currency",
            True,
            True,
            ("opportunities",),
            "Amount of deals created in the period",
        ),
        Metric("opportunities", "count", True, True, (), "Deals created in the period"),
        Metric(
            "activities",
            "count",
            True,
            True,
            ("calls", "emails", "meetings", "tasks"),
            "Calls, emails, meetings and tasks logged",
        ),
        Metric("calls", "count", True, True, (), "Calls logged"),
        Metric("emails", "count", True, True, (), "Emails logged"),
        Metric("meetings", "count", True, True, (), "Meetings logged"),
        Metric("tasks", "count", True, True, (), "Tasks logged"),
        Metric(
            "win_rate",
            "ratio",
            True,
            False,
            ("won_deals", "lost_deals"),
            "Won / closed deals, by count",
        ),
        Metric(
            "win_rate_value",
            "ratio",
            True,
            False,
            ("won_revenue", "closed_value"),
            "Won / closed deals, by value",
        ),
        Metric(
            "avg_deal_size",
            "currency",
            True,
            False,
            ("won_revenue", "won_deals"),
            "Mean amount of won deals",
        ),
        Metric(
            "sales_cycle_days",
            "days",
            False,
            False,
            ("won_deals",),
            "Median days from created to won",
        ),
        Metric(
            "sales_velocity",
            "currency_per_day",
            True,
            False,
            ("opportunities", "win_rate", "avg_deal_size", "sales_cycle_days"),
            "Opportunities x win rate x deal size / cycle days",
        ),
    )
}
ADDITIVE_METRICS = tuple(name for name, m in METRICS.items() if m.additive)
ACTIVITY_METRIC_OF_TYPE = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
}
COUNT_COLUMNS = (
    "won_deals",
    "lost_deals",
    "closed_deals",
    "opportunities",
    "activities",
    "calls",
    "emails",
    "meetings",
    "tasks",
)
VALUE_COLUMNS = ("won_revenue", "closed_value", "pipeline_created")
METRIC_COLUMNS = (
    *VALUE_COLUMNS,
    *COUNT_COLUMNS,
    "win_rate",
    "win_rate_value",
    "avg_deal_size",
    "sales_cycle_days",
    "sales_velocity",
)
_DAY_NS = 86_400 * 10**9


class UnknownCurrencyError(ValueError):
    pass


def to_reporting_currency(
    amount: pd.Series, currency: pd.Series, rates: Mapping[str, float]
) -> pd.Series:
    """amount × rates[currency]; an unknown currency is an error, not a silent zero."""
    codes, uniques = pd.factorize(currency.astype("string").str.upper())
    table = np.array([rates.get(str(u), np.nan) for u in uniques], dtype="float64")
    rate = table[codes] if len(uniques) else np.full(len(codes), np.nan)
    rate = np.where(codes < 0, np.nan, rate)
    values = amount.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(rate) & ~np.isnan(values)
    if missing.any():
        bad = sorted({str(c) for c in currency[missing]})
        raise UnknownCurrencyError(f"no conversion rate for currency {', '.join(bad)}")
    return pd.Series(values * rate, index=amount.index)


def _local(ts: pd.Series, tz: str) -> pd.Series:
    """Timestamps as wall-clock time in the reporting timezone (period boundaries are local)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        local: pd.Series = ts.dt.tz_convert(tz)
        return local
    return ts


def period_metrics(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
    tz: str = "UTC",
    key: str = "rep_id",
) -> pd.DataFrame:
    """One row per (``key``, period) with data, and every metric of the module docstring.

    ``key`` is the grouping column present on both frames: ``rep_id``, or a ``team_id`` that a
    caller added (one row per record and team it rolls up to) to get pooled team figures.
    Columns: ``key, period, period_index`` then :data:`METRIC_COLUMNS`.
    """
    parts: list[pd.DataFrame] = []
    live = deals[~deals["is_deleted"].to_numpy(dtype=bool)]
    if len(live):
        value = to_reporting_currency(live["amount"], live["currency"], rates).fillna(0.0)
        status = live["status"].to_numpy()
        closed_idx = period_index(live["close_date"], kind, cal)
        won = status == "won"
        lost = status == "lost"
        closed = (won | lost) & (closed_idx != MISSING_INDEX)
        created_at = _local(live["created_at"], tz)
        end = pd.to_datetime(live["close_date"])
        if "closed_at" in live:
            local_closed = _local(live["closed_at"], tz)
            if isinstance(local_closed.dtype, pd.DatetimeTZDtype):
                local_closed = local_closed.dt.tz_localize(None)
            end = local_closed.where(local_closed.notna(), end)
        start = (
            created_at.dt.tz_localize(None)
            if isinstance(created_at.dtype, pd.DatetimeTZDtype)
            else created_at
        )
        cycle = end.to_numpy(dtype="datetime64[ns]") - start.to_numpy(dtype="datetime64[ns]")
        cycle_days = cycle.astype("timedelta64[ns]").astype(np.int64) / _DAY_NS
        cycle_days = np.where(np.isnat(cycle), np.nan, cycle_days)
        keys = live[key].to_numpy()
        closed_frame = pd.DataFrame(
            {
                key: keys[closed],
                "period_index": closed_idx[closed],
                "won_revenue": np.where(won, value, 0.0)[closed],
                "closed_value": value.to_numpy()[closed],
                "won_deals": won[closed].astype(np.int64),
                "lost_deals": lost[closed].astype(np.int64),
                "cycle": np.where(won, cycle_days, np.nan)[closed],
            }
        )
        grouped = closed_frame.groupby([key, "period_index"], sort=False)
        agg = grouped[["won_revenue", "closed_value", "won_deals", "lost_deals"]].sum()
        agg["sales_cycle_days"] = grouped["cycle"].median()
        parts.append(agg)
        created_idx = period_index(created_at, kind, cal)
        has_created = created_idx != MISSING_INDEX
        created_frame = pd.DataFrame(
            {
                key: keys[has_created],
                "period_index": created_idx[has_created],
                "pipeline_created": value.to_numpy()[has_created],
            }
        )
        g = created_frame.groupby([key, "period_index"], sort=False)["pipeline_created"]
        parts.append(pd.DataFrame({"pipeline_created": g.sum(), "opportunities": g.size()}))
    acts = activities[~activities["is_deleted"].to_numpy(dtype=bool)]
    if len(acts):
        idx = period_index(_local(acts["occurred_at"], tz), kind, cal)
        ok = idx != MISSING_INDEX
        type_codes = (
            acts["type"]
            .map({t: i for i, t in enumerate(ACTIVITY_METRIC_OF_TYPE)})
            .to_numpy(dtype="float64", na_value=np.nan)
        )
        frame = pd.DataFrame(
            {key: acts[key].to_numpy()[ok], "period_index": idx[ok], "t": type_codes[ok]}
        )
        counts = frame.groupby([key, "period_index", "t"], sort=False).size().unstack("t")
        # Without this the columns axis stays named "t" and leaks into the result frame.
        counts.columns.name = None
        counts = counts.rename(
            columns={float(i): m for i, m in enumerate(ACTIVITY_METRIC_OF_TYPE.values())}
        )
        counts["activities"] = frame.groupby([key, "period_index"], sort=False).size()
        parts.append(counts)
    out = (
        pd.concat(parts, axis=1)
        if parts
        else pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=[key, "period_index"]))
    )
    return _finish(out.reset_index(), key, kind)


def _finish(out: pd.DataFrame, key: str, kind: str) -> pd.DataFrame:
    for col in (*COUNT_COLUMNS, *VALUE_COLUMNS):
        if col not in out:
            out[col] = 0
    counts = [c for c in COUNT_COLUMNS if c != "closed_deals"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out[list(VALUE_COLUMNS)] = out[list(VALUE_COLUMNS)].fillna(0.0).astype("float64")
    if "sales_cycle_days" not in out:
        out["sales_cycle_days"] = np.nan
    out["closed_deals"] = out["won_deals"] + out["lost_deals"]
    # Ratios of nothing are undefined (NaN), never 0: a rep with no closed deals has no win rate.
    out["win_rate"] = out["won_deals"] / out["closed_deals"].where(out["closed_deals"] > 0)
    out["win_rate_value"] = out["won_revenue"] / out["closed_value"].where(out["closed_value"] > 0)
    out["avg_deal_size"] = out["won_revenue"] / out["won_deals"].where(out["won_deals"] > 0)
    out["sales_velocity"] = (
        out["opportunities"]
        * out["win_rate"]
        * out["avg_deal_size"]
        / out["sales_cycle_days"].where(out["sales_cycle_days"] > 0)
    )
    labels = {i: index_label(kind, i) for i in pd.unique(out["period_index"])}
    out.insert(1, "period", out["period_index"].map(labels).astype("object"))
    out = out[[key, "period", "period_index", *METRIC_COLUMNS]]
    return out.sort_values([key, "period_index"], ignore_index=True)


def additive_actuals(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
    tz: str = "UTC",
) -> pd.DataFrame:
    """Long frame ``rep_id, period, metric, value`` of the additive metrics."""
    wide = period_metrics(deals, activities, kind=kind, cal=cal, rates=rates, tz=tz)
    long = wide.melt(
        id_vars=["rep_id", "period"], value_vars=list(ADDITIVE_METRICS), var_name="metric"
    )
    long["value"] = long["value"].astype("float64")
    return long.sort_values(["rep_id", "period", "metric"], ignore_index=True)
