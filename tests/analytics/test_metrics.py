"""Tests for analytics.metrics on small hand-built frames.

Every expected number is worked out by hand in the comments next to it, never re-derived with
the code under test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.metrics import (
    ADDITIVE_METRICS,
    METRIC_COLUMNS,
    METRICS,
    UnknownCurrencyError,
    additive_actuals,
    period_metrics,
    to_reporting_currency,
)
from analytics.periods import FiscalCalendar

CAL1 = FiscalCalendar()
CAL2 = FiscalCalendar(start_month=2)
RATES = {"USD": 1.0, "EUR": 1.2}

DEAL_COLUMNS = [
    "rep_id",
    "amount",
    "currency",
    "status",
    "created_at",
    "close_date",
    "closed_at",
    "is_deleted",
]
ACTIVITY_COLUMNS = ["rep_id", "type", "occurred_at", "is_deleted"]


def utc(text: str | None) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC") if text else pd.NaT


def deal(
    rep_id: int,
    amount: float,
    status: str,
    created: str,
    close: str | None,
    closed_at: str | None = None,
    *,
    currency: str = "USD",
    deleted: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "rep_id": rep_id,
        "amount": amount,
        "currency": currency,
        "status": status,
        "created_at": utc(created),
        "close_date": pd.Timestamp(close) if close else pd.NaT,
        "closed_at": utc(closed_at),
        "is_deleted": deleted,
        **extra,
    }


def activity(
    rep_id: int, type_: str, occurred: str, *, deleted: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "rep_id": rep_id,
        "type": type_,
        "occurred_at": utc(occurred),
        "is_deleted": deleted,
        **extra,
    }


def deals_frame(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*DEAL_COLUMNS, *extra])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def activities_frame(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*ACTIVITY_COLUMNS, *extra])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def row(frame: pd.DataFrame, key: int, period: str, key_col: str = "rep_id") -> pd.Series:
    hits = frame[(frame[key_col] == key) & (frame["period"] == period)]
    assert len(hits) == 1, f"expected one row for {key_col}={key} {period}, got {len(hits)}"
    return hits.iloc[0]


def assert_metrics(actual: pd.Series, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        got = actual[name]
        if isinstance(value, float) and math.isnan(value):
            assert pd.isna(got), f"{name}: expected NaN, got {got}"
        else:
            assert got == pytest.approx(value), f"{name}: expected {value}, got {got}"


# Rep 1 in Nov 2026 (calendar months):
#   A won   1000 USD, created 10-02 10:00Z, close 11-05, closed_at 11-05 12:00Z -> cycle 34 d 2 h
#   B won    500 EUR (= 600), created 11-01 00:00Z, close 11-20, no closed_at -> cycle 19 d
#   C lost   300 USD, created 11-03, close 11-25
#   D open  2000 USD, created 11-10, close 12-15 -> pipeline only
#   E won   9999 USD, deleted -> never counts
#   F open (re-opened: still has a past close_date and closed_at) 700 USD, created 11-04
# Rep 2: only a lost deal (400 USD, created 11-01, closed 11-10).
BASE_DEALS = [
    deal(1, 1000, "won", "2026-10-02 10:00", "2026-11-05", "2026-11-05 12:00"),
    deal(1, 500, "won", "2026-11-01 00:00", "2026-11-20", None, currency="EUR"),
    deal(1, 300, "lost", "2026-11-03 00:00", "2026-11-25", "2026-11-25 00:00"),
    deal(1, 2000, "open", "2026-11-10 00:00", "2026-12-15"),
    deal(1, 9999, "won", "2026-11-02 00:00", "2026-11-06", "2026-11-06 00:00", deleted=True),
    deal(1, 700, "open", "2026-11-04 00:00", "2026-11-12", "2026-11-12 00:00"),
    deal(2, 400, "lost", "2026-11-01 00:00", "2026-11-10", "2026-11-10 00:00"),
]
BASE_ACTIVITIES = [
    activity(1, "call", "2026-11-02 09:00"),
    activity(1, "call", "2026-11-03 09:00"),
    activity(1, "call", "2026-11-04 09:00", deleted=True),
    activity(1, "email", "2026-11-05 09:00"),
    activity(1, "meeting", "2026-11-06 09:00"),
    activity(1, "task", "2026-12-01 09:00"),
]


@pytest.fixture
def monthly() -> pd.DataFrame:
    return period_metrics(
        deals_frame(BASE_DEALS),
        activities_frame(BASE_ACTIVITIES),
        kind="month",
        cal=CAL1,
        rates=RATES,
    )


def test_columns_and_order(monthly: pd.DataFrame) -> None:
    assert list(monthly.columns) == ["rep_id", "period", "period_index", *METRIC_COLUMNS]
    # Oct (A created), Nov, Dec (D closes open -> no row; the task is in Dec) for rep 1; Nov rep 2.
    assert list(zip(monthly["rep_id"], monthly["period"], strict=True)) == [
        (1, "2026-10"),
        (1, "2026-11"),
        (1, "2026-12"),
        (2, "2026-11"),
    ]
    oct_, nov, dec = 2026 * 12 + 9, 2026 * 12 + 10, 2026 * 12 + 11
    assert list(monthly["period_index"]) == [oct_, nov, dec, nov]


def test_every_metric_for_a_busy_month(monthly: pd.DataFrame) -> None:
    cycle_a = 34 + 2 / 24  # 10-02 10:00 -> 11-05 12:00
    cycle_b = 19.0  # 11-01 00:00 -> close_date 11-20 (no closed_at)
    median_cycle = (cycle_a + cycle_b) / 2
    assert_metrics(
        row(monthly, 1, "2026-11"),
        {
            "won_revenue": 1000 + 600,
            "won_deals": 2,
            "lost_deals": 1,
            "closed_deals": 3,
            "closed_value": 1000 + 600 + 300,
            # created in Nov: B, C, D, F (E is deleted, A was created in Oct)
            "opportunities": 4,
            "pipeline_created": 600 + 300 + 2000 + 700,
            "activities": 4,  # the deleted call does not count, the task is in Dec
            "calls": 2,
            "emails": 1,
            "meetings": 1,
            "tasks": 0,
            "win_rate": 2 / 3,
            "win_rate_value": 1600 / 1900,
            "avg_deal_size": 800.0,
            "sales_cycle_days": median_cycle,
            "sales_velocity": 4 * (2 / 3) * 800 / median_cycle,
        },
    )


def test_dtypes(monthly: pd.DataFrame) -> None:
    for col in ("won_deals", "lost_deals", "closed_deals", "opportunities", "activities", "calls"):
        assert monthly[col].dtype == np.int64, col
    for col in ("won_revenue", "closed_value", "pipeline_created", "win_rate", "avg_deal_size"):
        assert monthly[col].dtype == np.float64, col


def test_month_with_only_created_deals_has_undefined_ratios(monthly: pd.DataFrame) -> None:
    assert_metrics(
        row(monthly, 1, "2026-10"),
        {
            "won_revenue": 0.0,
            "won_deals": 0,
            "closed_deals": 0,
            "closed_value": 0.0,
            "opportunities": 1,
            "pipeline_created": 1000.0,
            "activities": 0,
            "win_rate": math.nan,
            "win_rate_value": math.nan,
            "avg_deal_size": math.nan,
            "sales_cycle_days": math.nan,
            "sales_velocity": math.nan,
        },
    )


def test_activities_only_month(monthly: pd.DataFrame) -> None:
    # Dec: D (open) closes in Dec but open deals never count as closed; one task.
    assert_metrics(
        row(monthly, 1, "2026-12"),
        {
            "won_deals": 0,
            "lost_deals": 0,
            "closed_value": 0.0,
            "opportunities": 0,
            "pipeline_created": 0.0,
            "activities": 1,
            "tasks": 1,
            "calls": 0,
            "win_rate": math.nan,
        },
    )


def test_rep_with_only_lost_deals(monthly: pd.DataFrame) -> None:
    assert_metrics(
        row(monthly, 2, "2026-11"),
        {
            "won_revenue": 0.0,
            "won_deals": 0,
            "lost_deals": 1,
            "closed_deals": 1,
            "closed_value": 400.0,
            "opportunities": 1,
            "pipeline_created": 400.0,
            "activities": 0,  # no activities at all for rep 2
            "calls": 0,
            "win_rate": 0.0,
            "win_rate_value": 0.0,
            "avg_deal_size": math.nan,
            "sales_cycle_days": math.nan,
            "sales_velocity": math.nan,
        },
    )


def test_deleted_deals_never_count() -> None:
    deals = deals_frame(
        [
            deal(1, 9999, "won", "2026-11-02 00:00", "2026-11-06", "2026-11-06", deleted=True),
            deal(1, 8888, "open", "2026-11-02 00:00", "2026-11-20", deleted=True),
        ]
    )
    out = period_metrics(deals, activities_frame([]), kind="month", cal=CAL1, rates=RATES)
    assert out.empty
    assert list(out.columns) == ["rep_id", "period", "period_index", *METRIC_COLUMNS]


def test_open_deals_count_only_in_pipeline_figures() -> None:
    deals = deals_frame(
        [
            deal(1, 2000, "open", "2026-11-10 00:00", "2026-11-15"),
            # re-opened: was won on 11-12, now open again -> pipeline only
            deal(1, 700, "open", "2026-11-04 00:00", "2026-11-12", "2026-11-12 00:00"),
        ]
    )
    out = period_metrics(deals, activities_frame([]), kind="month", cal=CAL1, rates=RATES)
    assert_metrics(
        row(out, 1, "2026-11"),
        {
            "won_revenue": 0.0,
            "won_deals": 0,
            "lost_deals": 0,
            "closed_value": 0.0,
            "opportunities": 2,
            "pipeline_created": 2700.0,
            "sales_cycle_days": math.nan,
            "win_rate": math.nan,
        },
    )


def test_no_deals() -> None:
    acts = activities_frame(
        [activity(3, "call", "2026-11-02 09:00"), activity(3, "meeting", "2026-11-09 09:00")]
    )
    out = period_metrics(deals_frame([]), acts, kind="month", cal=CAL1, rates=RATES)
    assert len(out) == 1
    # the activity-type pivot must not leave a name on the columns axis
    assert out.columns.name is None
    assert_metrics(
        row(out, 3, "2026-11"),
        {
            "won_revenue": 0.0,
            "won_deals": 0,
            "closed_deals": 0,
            "opportunities": 0,
            "pipeline_created": 0.0,
            "activities": 2,
            "calls": 1,
            "meetings": 1,
            "emails": 0,
            "tasks": 0,
            "win_rate": math.nan,
            "avg_deal_size": math.nan,
            "sales_velocity": math.nan,
        },
    )


def test_no_deals_and_no_activities_is_an_empty_frame() -> None:
    out = period_metrics(
        deals_frame([]), activities_frame([]), kind="quarter", cal=CAL1, rates=RATES
    )
    assert out.empty
    assert list(out.columns) == ["rep_id", "period", "period_index", *METRIC_COLUMNS]


def test_currency_conversion_in_metrics() -> None:
    deals = deals_frame(
        [
            deal(1, 100, "won", "2026-11-01", "2026-11-02", currency="EUR"),
            deal(1, 100, "won", "2026-11-01", "2026-11-02", currency="eur"),  # case-insensitive
            deal(1, 50, "lost", "2026-11-01", "2026-11-02", currency="GBP"),
        ]
    )
    out = period_metrics(
        deals, activities_frame([]), kind="month", cal=CAL1, rates={**RATES, "GBP": 1.5}
    )
    assert_metrics(
        row(out, 1, "2026-11"),
        {"won_revenue": 240.0, "closed_value": 240.0 + 75.0, "pipeline_created": 315.0},
    )


def test_missing_rate_raises() -> None:
    deals = deals_frame([deal(1, 100, "won", "2026-11-01", "2026-11-02", currency="JPY")])
    with pytest.raises(UnknownCurrencyError, match="JPY"):
        period_metrics(deals, activities_frame([]), kind="month", cal=CAL1, rates=RATES)


def test_to_reporting_currency() -> None:
    amount = pd.Series([10.0, 20.0, np.nan, 5.0], index=[7, 8, 9, 10])
    currency = pd.Series(["USD", "eur", "XXX", "EUR"], index=[7, 8, 9, 10])
    out = to_reporting_currency(amount, currency, RATES)
    # a missing amount needs no rate, so the unknown XXX on it is not an error
    assert list(out.index) == [7, 8, 9, 10]
    assert out.iloc[:2].tolist() == [10.0, 24.0]
    assert np.isnan(out.iloc[2])
    assert out.iloc[3] == pytest.approx(6.0)


def test_to_reporting_currency_unknown_and_missing_currency() -> None:
    with pytest.raises(UnknownCurrencyError, match="XXX"):
        to_reporting_currency(pd.Series([1.0, 2.0]), pd.Series(["USD", "XXX"]), RATES)
    with pytest.raises(UnknownCurrencyError):
        to_reporting_currency(pd.Series([1.0]), pd.Series([None], dtype="string"), RATES)


def test_to_reporting_currency_empty() -> None:
    out = to_reporting_currency(
        pd.Series([], dtype="float64"), pd.Series([], dtype="string"), RATES
    )
    assert out.empty


def test_reporting_timezone_moves_records_across_a_month_boundary() -> None:
    # 2026-11-30 23:30Z is 2026-12-01 08:30 in Tokyo; 2026-12-01 03:00Z is 2026-11-30 22:00
    # in New York (EST, UTC-5).
    acts = activities_frame(
        [activity(1, "call", "2026-11-30 23:30"), activity(1, "email", "2026-12-01 03:00")]
    )
    deals = deals_frame([deal(1, 100, "open", "2026-11-30 23:30", "2027-01-15")])
    utc_out = period_metrics(deals, acts, kind="month", cal=CAL1, rates=RATES)
    tokyo = period_metrics(deals, acts, kind="month", cal=CAL1, rates=RATES, tz="Asia/Tokyo")
    new_york = period_metrics(
        deals, acts, kind="month", cal=CAL1, rates=RATES, tz="America/New_York"
    )

    assert_metrics(row(utc_out, 1, "2026-11"), {"calls": 1, "emails": 0, "opportunities": 1})
    assert_metrics(row(utc_out, 1, "2026-12"), {"calls": 0, "emails": 1, "opportunities": 0})

    assert list(tokyo["period"]) == ["2026-12"]
    assert_metrics(row(tokyo, 1, "2026-12"), {"calls": 1, "emails": 1, "opportunities": 1})

    assert list(new_york["period"]) == ["2026-11"]
    assert_metrics(row(new_york, 1, "2026-11"), {"calls": 1, "emails": 1, "opportunities": 1})


def test_sales_cycle_is_measured_in_the_reporting_timezone() -> None:
    # created 11-01 20:00Z (= 11-02 05:00 Tokyo), no closed_at, close_date 11-10 (a local
    # date, midnight): 8 days 19 hours in Tokyo, 8 days 4 hours in UTC.
    deals = deals_frame([deal(1, 100, "won", "2026-11-01 20:00", "2026-11-10")])
    tokyo = period_metrics(
        deals, activities_frame([]), kind="month", cal=CAL1, rates=RATES, tz="Asia/Tokyo"
    )
    in_utc = period_metrics(deals, activities_frame([]), kind="month", cal=CAL1, rates=RATES)
    assert row(tokyo, 1, "2026-11")["sales_cycle_days"] == pytest.approx(7 + 19 / 24)
    assert row(in_utc, 1, "2026-11")["sales_cycle_days"] == pytest.approx(8 + 4 / 24)


def test_quarter_and_year_with_fiscal_start_month_2() -> None:
    # start_month=2: FY2027 = 2026-02-01..2027-01-31; its Q3 = Aug..Oct 2026, Q4 = Nov..Jan.
    deals = deals_frame(
        [
            deal(1, 100, "won", "2026-10-31 12:00", "2026-11-01"),  # created Q3, closed Q4
            deal(1, 200, "won", "2026-11-15 00:00", "2027-01-31"),  # Q4 FY2027 (last day)
            deal(1, 400, "lost", "2027-01-20 00:00", "2027-02-01"),  # Q1 FY2028
            deal(1, 800, "won", "2026-01-05 00:00", "2026-01-31"),  # Q4 FY2026
        ]
    )
    acts = activities_frame([activity(1, "call", "2027-01-31 23:00")])
    quarters = period_metrics(deals, acts, kind="quarter", cal=CAL2, rates=RATES)
    assert list(quarters["period"]) == ["2026-Q4", "2027-Q3", "2027-Q4", "2028-Q1"]
    assert_metrics(
        row(quarters, 1, "2027-Q3"), {"opportunities": 1, "won_deals": 0, "pipeline_created": 100}
    )
    assert_metrics(
        row(quarters, 1, "2027-Q4"),
        {
            "won_revenue": 300.0,
            "won_deals": 2,
            "opportunities": 2,  # the 200 (11-15) and the 400 (01-20)
            "pipeline_created": 600.0,
            "calls": 1,
        },
    )
    assert_metrics(row(quarters, 1, "2028-Q1"), {"lost_deals": 1, "closed_value": 400.0})

    years = period_metrics(deals, acts, kind="year", cal=CAL2, rates=RATES)
    assert list(years["period"]) == ["FY2026", "FY2027", "FY2028"]
    assert_metrics(
        row(years, 1, "FY2027"),
        {"won_revenue": 300.0, "won_deals": 2, "opportunities": 3, "calls": 1},
    )
    assert_metrics(row(years, 1, "FY2026"), {"won_revenue": 800.0, "opportunities": 1})
    assert_metrics(row(years, 1, "FY2028"), {"lost_deals": 1, "won_deals": 0, "win_rate": 0.0})


def test_group_by_team() -> None:
    # One row per record and team it rolls up to: rep 1 is in teams 10 and 20, rep 2 in 10.
    deals = deals_frame(
        [
            deal(1, 100, "won", "2026-11-01", "2026-11-02", team_id=10),
            deal(1, 100, "won", "2026-11-01", "2026-11-02", team_id=20),
            deal(2, 300, "lost", "2026-11-01", "2026-11-03", team_id=10),
            deal(2, 50, "won", "2026-11-01", "2026-11-04", team_id=10),
        ],
        extra=("team_id",),
    )
    acts = activities_frame(
        [
            activity(1, "call", "2026-11-02", team_id=10),
            activity(1, "call", "2026-11-02", team_id=20),
            activity(2, "email", "2026-11-02", team_id=10),
        ],
        extra=("team_id",),
    )
    out = period_metrics(deals, acts, kind="month", cal=CAL1, rates=RATES, key="team_id")
    assert list(out.columns[:3]) == ["team_id", "period", "period_index"]
    assert list(out["team_id"]) == [10, 20]
    assert_metrics(
        row(out, 10, "2026-11", "team_id"),
        {
            "won_revenue": 150.0,
            "won_deals": 2,
            "lost_deals": 1,
            "win_rate": 2 / 3,
            "win_rate_value": 150 / 450,
            "avg_deal_size": 75.0,
            "activities": 2,
            "calls": 1,
            "emails": 1,
        },
    )
    assert_metrics(
        row(out, 20, "2026-11", "team_id"),
        {"won_revenue": 100.0, "won_deals": 1, "activities": 1, "win_rate": 1.0},
    )


def test_weeks_use_iso_weeks() -> None:
    # 2026-11-29 is a Sunday (W48), 2026-11-30 a Monday (W49).
    acts = activities_frame(
        [activity(1, "call", "2026-11-29 12:00"), activity(1, "call", "2026-11-30 12:00")]
    )
    out = period_metrics(deals_frame([]), acts, kind="week", cal=CAL1, rates=RATES)
    assert list(out["period"]) == ["2026-W48", "2026-W49"]
    assert list(out["calls"]) == [1, 1]


def test_additive_actuals_long_frame() -> None:
    out = additive_actuals(
        deals_frame(BASE_DEALS),
        activities_frame(BASE_ACTIVITIES),
        kind="month",
        cal=CAL1,
        rates=RATES,
    )
    assert list(out.columns) == ["rep_id", "period", "metric", "value"]
    assert out["value"].dtype == np.float64
    # 4 (rep, month) rows x every additive metric, and only additive metrics
    assert len(out) == 4 * len(ADDITIVE_METRICS)
    assert set(out["metric"]) == set(ADDITIVE_METRICS)
    assert all(METRICS[m].additive for m in out["metric"])
    nov = out[(out["rep_id"] == 1) & (out["period"] == "2026-11")].set_index("metric")["value"]
    assert nov["won_revenue"] == pytest.approx(1600.0)
    assert nov["won_deals"] == 2.0
    assert nov["opportunities"] == 4.0
    assert nov["pipeline_created"] == pytest.approx(3600.0)
    assert nov["activities"] == 4.0
    assert nov["tasks"] == 0.0
    # sorted by rep, period, metric
    keys = list(zip(out["rep_id"], out["period"], out["metric"], strict=True))
    assert keys == sorted(keys)
