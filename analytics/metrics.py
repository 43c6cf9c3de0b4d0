"""The metric catalogue and the additive per-rep, per-period actuals.

Input frames (one row per record, deleted records already present with ``is_deleted``):

* deals: ``rep_id, amount, currency, status ('open'|'won'|'lost'), created_at (UTC),
  close_date, is_deleted``
* activities: ``rep_id, type ('call'|'email'|'meeting'|'task'), occurred_at (UTC), is_deleted``

Formulas (``docs/metrics.md`` is the long form):

* ``won_revenue``      = Σ amount × rate(currency) over won deals whose close_date is in the
  period, where rate converts to the reporting currency.
* ``won_deals``        = count of those deals.
* ``pipeline_created`` = Σ amount × rate(currency) over deals whose created_at is in the period,
  whatever their status.
* ``activities``       = count of activities whose occurred_at is in the period; ``calls``,
  ``emails``, ``meetings``, ``tasks`` count one type each.

Deleted records never count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from analytics.periods import FiscalCalendar, label_dates


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "currency" | "count" | "ratio" | "days"
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("won_revenue", "currency", True, "Revenue of deals won in the period"),
        Metric("won_deals", "count", True, "Number of deals won in the period"),
        Metric("pipeline_created", "currency", True, "Amount of deals created in the period"),
        Metric("activities", "count", True, "Calls, emails, meetings and tasks logged"),
        Metric("calls", "count", True, "Calls logged"),
        Metric("emails", "count", True, "Emails logged"),
        Metric("meetings", "count", True, "Meetings logged"),
        Metric("tasks", "count", True, "Tasks logged"),
        Metric("win_rate", "ratio", True, "Won / closed deals, by count"),
        Metric("avg_deal_size", "currency", True, "Mean amount of won deals"),
        Metric("sales_cycle_days", "days", False, "Median days from created to won"),
    )
}
ADDITIVE_METRICS = (
    "won_revenue",
    "won_deals",
    "pipeline_created",
    "activities",
    "calls",
    "emails",
    "meetings",
    "tasks",
)
ACTIVITY_METRIC_OF_TYPE = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
}
ACTUALS_COLUMNS = ["rep_id", "period", "metric", "value"]


class UnknownCurrencyError(ValueError):
    pass


def to_reporting_currency(
    amount: pd.Series, currency: pd.Series, rates: Mapping[str, float]
) -> pd.Series:
    """amount × rates[currency]; an unknown currency is an error, not a silent zero."""
    rate = currency.str.upper().map(dict(rates))
    missing = rate.isna() & amount.notna()
    if missing.any():
        bad = sorted(set(currency[missing].astype(str)))
        raise UnknownCurrencyError(f"no conversion rate for currency {', '.join(bad)}")
    return amount.astype("float64") * rate.astype("float64")


def additive_actuals(
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    kind: str,
    cal: FiscalCalendar,
    rates: Mapping[str, float],
) -> pd.DataFrame:
    """Long frame ``rep_id, period, metric, value`` of the additive metrics (formulas above)."""
    parts: list[pd.DataFrame] = []
    live = deals[~deals["is_deleted"].astype(bool)]
    if len(live):
        value = to_reporting_currency(live["amount"].fillna(0.0), live["currency"], rates)
        won = live["status"] == "won"
        won_frame = pd.DataFrame(
            {
                "rep_id": live.loc[won, "rep_id"],
                "period": label_dates(live.loc[won, "close_date"], kind, cal),
                "value": value[won],
            }
        ).dropna(subset=["period"])
        grouped = won_frame.groupby(["rep_id", "period"], observed=True)["value"]
        parts.append(
            grouped.sum()
            .rename("won_revenue")
            .reset_index()
            .melt(["rep_id", "period"], var_name="metric")
        )
        parts.append(
            grouped.size()
            .rename("won_deals")
            .reset_index()
            .melt(["rep_id", "period"], var_name="metric")
        )
        created = pd.DataFrame(
            {
                "rep_id": live["rep_id"],
                "period": label_dates(live["created_at"], kind, cal),
                "value": value,
            }
        ).dropna(subset=["period"])
        parts.append(
            created.groupby(["rep_id", "period"], observed=True)["value"]
            .sum()
            .rename("pipeline_created")
            .reset_index()
            .melt(["rep_id", "period"], var_name="metric")
        )
    acts = activities[~activities["is_deleted"].astype(bool)]
    if len(acts):
        frame = pd.DataFrame(
            {
                "rep_id": acts["rep_id"],
                "period": label_dates(acts["occurred_at"], kind, cal),
                "metric": acts["type"].map(ACTIVITY_METRIC_OF_TYPE),
            }
        ).dropna(subset=["period", "metric"])
        by_type = frame.groupby(["rep_id", "period", "metric"], observed=True).size()
        parts.append(by_type.rename("value").reset_index())
        total = frame.groupby(["rep_id", "period"], observed=True).size()
        parts.append(total.rename("value").reset_index().assign(metric="activities"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ACTUALS_COLUMNS})
    out = pd.concat([p[ACTUALS_COLUMNS] for p in parts], ignore_index=True)
    out["value"] = out["value"].astype("float64")
    return out.sort_values(["rep_id", "period", "metric"], ignore_index=True)
