"""Tests for analytics.targets: quarter and year targets derived from monthly ones.

Calendar facts (calendar fiscal year unless stated): 2026-Q4 = Oct (31 days) + Nov (30) +
Dec (31) = 92 days. as_of = 2026-11-20. Ramp schedule (0.2, 0.4, 0.6, 0.8).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.gaps import GapConfig, compute_gaps
from analytics.metrics import METRIC_COLUMNS
from analytics.periods import FiscalCalendar, parse_period
from analytics.targets import TARGET_COLUMNS, derive_rollup_targets, rollup_parts

AS_OF = date(2026, 11, 20)
CONFIG = GapConfig(as_of=AS_OF)
NO_REPS = pd.DataFrame(
    {"rep_id": pd.Series(dtype="Int64"), "start_date": pd.Series(dtype="M8[ns]")}
)


def targets(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [{"rep_id": None, "team_id": None, "metric": "won_revenue", **r} for r in rows],
        columns=["target_id", "rep_id", "team_id", "metric", "period", "value"],
    )
    frame["rep_id"] = frame["rep_id"].astype("Int64")
    frame["team_id"] = frame["team_id"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    return frame


def monthly(rep_id: int, values: dict[str, float], metric: str = "won_revenue") -> list[dict]:
    return [
        {"target_id": 100 + i, "rep_id": rep_id, "metric": metric, "period": p, "value": v}
        for i, (p, v) in enumerate(values.items())
    ]


def reps(**starts: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rep_id": pd.array([int(k[1:]) for k in starts], dtype="Int64"),
            "start_date": pd.to_datetime(list(starts.values())),
        }
    )


def derived(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    return frame[(frame["period"] == period) & frame["target_derived_from"].notna()]


Q4 = {"2026-10": 100.0, "2026-11": 200.0, "2026-12": 300.0}


def test_quarter_target_is_the_sum_of_its_monthly_targets() -> None:
    out = derive_rollup_targets(
        targets(*monthly(1, Q4)), periods=["2026-Q4"], reps=NO_REPS, config=CONFIG
    )
    assert list(out.columns) == list(TARGET_COLUMNS)
    assert len(out) == 1  # the months themselves are not in `periods`
    row = out.iloc[0]
    assert pd.isna(row["target_id"]) and row["rep_id"] == 1 and pd.isna(row["team_id"])
    assert row["value"] == 600.0
    assert row["target_derived_from"] == "2026-10,2026-11,2026-12"
    assert (row["proration_factor"], row["ramp_factor"]) == (1.0, 1.0)
    assert row["target_note"] == "derived: the sum of the targets of 2026-10, 2026-11, 2026-12"


def test_a_quarter_with_its_own_target_keeps_it() -> None:
    frame = targets(
        *monthly(1, Q4), {"target_id": 7, "rep_id": 1, "period": "2026-Q4", "value": 450}
    )
    out = derive_rollup_targets(frame, periods=["2026-Q4"], reps=NO_REPS, config=CONFIG)
    assert len(out) == 1
    assert out.iloc[0]["target_id"] == 7 and out.iloc[0]["value"] == 450.0
    assert pd.isna(out.iloc[0]["target_derived_from"])


def test_a_month_without_a_target_leaves_the_quarter_without_one() -> None:
    """Counting the missing month as 0 would understate the quarter's target."""
    frame = targets(*monthly(1, {"2026-10": 100.0, "2026-11": 200.0}))
    out = derive_rollup_targets(frame, periods=["2026-Q4"], reps=NO_REPS, config=CONFIG)
    assert out.empty


def test_months_before_a_reps_start_need_no_target_and_ramp_matches_the_months() -> None:
    """A rep starting 2026-11-15 with quotas for November and December only.

    November: 200 × 16/30 (days from the 15th) × 0.2 (ramp month 1) = 21.333...
    December: 300 × 1 × 0.4 (ramp month 2) = 120. The quarter: 500 in value, judged against
    141.333..., exactly the sum of the months' effective targets."""
    frame = targets(*monthly(1, {"2026-11": 200.0, "2026-12": 300.0}))
    people = reps(r1="2026-11-15")
    out = derive_rollup_targets(
        frame, periods=["2026-Q4", "2026-11", "2026-12"], reps=people, config=CONFIG
    )
    quarter = derived(out, "2026-Q4").iloc[0]
    assert quarter["value"] == 500.0
    assert quarter["target_derived_from"] == "2026-11,2026-12"
    assert quarter["target_note"].endswith("(each prorated and ramped over its own days)")
    # value × proration × ramp is the sum of the months' targets as each month judges them
    gaps = compute_gaps(
        out, _no_actuals(), reps=people, pipeline=None, win_rates=None, config=CONFIG
    )
    by_period = gaps.set_index("period")
    assert by_period.loc["2026-11", "target"] == pytest.approx(200 * 16 / 30 * 0.2)
    assert by_period.loc["2026-12", "target"] == pytest.approx(300 * 0.4)
    assert by_period.loc["2026-Q4", "target"] == pytest.approx(200 * 16 / 30 * 0.2 + 120)
    assert by_period.loc["2026-Q4", "target_full"] == 500.0
    # proration = Σ value × proration / Σ value = (200 × 16/30 + 300) / 500
    assert by_period.loc["2026-Q4", "proration_factor"] == pytest.approx(
        (200 * 16 / 30 + 300) / 500
    )
    assert by_period.loc["2026-Q4", "target_derived_from"] == "2026-11,2026-12"
    assert pd.isna(by_period.loc["2026-Q4", "target_id"])
    assert by_period.loc["2026-11", "target_derived_from"] is None


def test_a_missing_month_after_the_start_still_blocks_the_quarter() -> None:
    frame = targets(*monthly(1, {"2026-11": 200.0}))
    out = derive_rollup_targets(
        frame, periods=["2026-Q4"], reps=reps(r1="2026-11-15"), config=CONFIG
    )
    assert out.empty


def test_a_rep_starting_after_the_quarter_gets_nothing_derived() -> None:
    frame = targets(*monthly(1, {"2027-01": 200.0}))
    out = derive_rollup_targets(
        frame, periods=["2026-Q4"], reps=reps(r1="2027-01-04"), config=CONFIG
    )
    assert out.empty


def test_levels_are_the_day_weighted_mean_of_the_months() -> None:
    """win_rate 0.3 in Oct (31 days), 0.4 in Nov (30), 0.5 in Dec (31):
    (0.3 × 31 + 0.4 × 30 + 0.5 × 31) / 92."""
    frame = targets(
        *monthly(1, {"2026-10": 0.3, "2026-11": 0.4, "2026-12": 0.5}, metric="win_rate")
    )
    out = derive_rollup_targets(frame, periods=["2026-Q4"], reps=NO_REPS, config=CONFIG)
    row = out.iloc[0]
    assert row["value"] == pytest.approx((0.3 * 31 + 0.4 * 30 + 0.5 * 31) / 92)
    assert (row["proration_factor"], row["ramp_factor"]) == (1.0, 1.0)
    assert row["target_note"].startswith("derived: the day-weighted mean of the targets of")


def test_team_targets_derive_the_same_way() -> None:
    frame = targets(
        *(
            {"target_id": i, "team_id": 9, "period": p, "value": v}
            for i, (p, v) in enumerate(Q4.items())
        )
    )
    out = derive_rollup_targets(frame, periods=["2026-Q4"], reps=NO_REPS, config=CONFIG)
    row = out.iloc[0]
    assert row["team_id"] == 9 and pd.isna(row["rep_id"]) and row["value"] == 600.0


def test_a_year_uses_a_quarters_own_target_and_the_months_of_the_others() -> None:
    year = {f"2026-{m:02d}": 10.0 for m in range(4, 13)}
    frame = targets(
        {"target_id": 1, "rep_id": 1, "period": "2026-Q1", "value": 50},
        {"target_id": 2, "rep_id": 1, "period": "2026-01", "value": 999},  # the quarter's wins
        *monthly(1, year),
    )
    out = derive_rollup_targets(frame, periods=["FY2026", "2026-Q1"], reps=NO_REPS, config=CONFIG)
    fy = derived(out, "FY2026").iloc[0]
    assert fy["value"] == 50 + 9 * 10
    assert fy["target_derived_from"].split(",") == ["2026-Q1", *year]
    # The quarter's own target is listed as set, not derived.
    assert out[out["period"] == "2026-Q1"]["target_id"].tolist() == [1]


def test_fiscal_years_follow_the_calendar_setting() -> None:
    """With a fiscal year starting in February, FY2027 Q1 is Feb..Apr 2026."""
    cal = FiscalCalendar(start_month=2)
    config = GapConfig(as_of=AS_OF, cal=cal)
    frame = targets(*monthly(1, {"2026-02": 1.0, "2026-03": 2.0, "2026-04": 3.0}))
    out = derive_rollup_targets(frame, periods=["2027-Q1"], reps=NO_REPS, config=config)
    assert out.iloc[0]["value"] == 6.0
    assert rollup_parts(["2027-Q1"], cal=cal) == ["2027-Q1", "2026-02", "2026-03", "2026-04"]


def test_rollup_parts_lists_the_months_and_quarters_to_read() -> None:
    parts = rollup_parts(["FY2026", "2026-11"], cal=FiscalCalendar())
    assert parts[:2] == ["FY2026", "2026-11"]
    assert {"2026-Q1", "2026-Q4", "2026-01", "2026-12"} <= set(parts)
    assert len(parts) == 2 + 4 + 11  # 2026-11 is listed once


def test_no_rollup_periods_returns_the_set_targets() -> None:
    frame = targets(*monthly(1, Q4))
    out = derive_rollup_targets(frame, periods=["2026-11"], reps=NO_REPS, config=CONFIG)
    assert out["period"].tolist() == ["2026-11"] and out["value"].tolist() == [200.0]
    empty = derive_rollup_targets(targets(), periods=["2026-Q4"], reps=NO_REPS, config=CONFIG)
    assert empty.empty and list(empty.columns) == list(TARGET_COLUMNS)


def test_derived_quarter_is_paced_and_judged_like_a_set_one() -> None:
    """Derived 600 and a set 600 give the same gaps row but for the target's provenance."""
    set_frame = targets({"target_id": 1, "rep_id": 1, "period": "2026-Q4", "value": 600})
    derived_frame = derive_rollup_targets(
        targets(*monthly(1, Q4)), periods=["2026-Q4"], reps=NO_REPS, config=CONFIG
    )
    acts = _no_actuals()
    acts.loc[0, ["subject_id", "period", "won_revenue"]] = [1, "2026-Q4", 100.0]
    kwargs: dict[str, Any] = {"reps": NO_REPS, "pipeline": None, "win_rates": None}
    a = compute_gaps(set_frame, acts, config=CONFIG, **kwargs).iloc[0]
    b = compute_gaps(derived_frame, acts, config=CONFIG, **kwargs).iloc[0]
    for c in ("target", "expected_to_date", "pace_gap", "projected", "status", "attainment"):
        assert a[c] == b[c], c
    assert b["status"] == "at_risk"  # 100 against 600 × 51/92 expected by Nov 20
    assert b["expected_to_date"] == pytest.approx(600 * 51 / 92)
    assert (
        a["target_derived_from"] is None and b["target_derived_from"] == "2026-10,2026-11,2026-12"
    )


def _no_actuals() -> pd.DataFrame:
    frame = pd.DataFrame(
        {"subject_type": ["rep"], "subject_id": [0], "period": ["none"]},
    )
    for c in METRIC_COLUMNS:
        frame[c] = np.nan
    return frame


def test_a_rep_still_ramping_from_before_the_quarter_is_ramped_month_by_month() -> None:
    """Started 2026-09-10: October is ramp month 2 (40%), November 3 (60%), December 4 (80%):
    100 × 0.4 + 200 × 0.6 + 300 × 0.8 = 400, not 600 × one factor."""
    people = reps(r1="2026-09-10")
    out = derive_rollup_targets(
        targets(*monthly(1, Q4)), periods=["2026-Q4"], reps=people, config=CONFIG
    )
    gaps = compute_gaps(
        out, _no_actuals(), reps=people, pipeline=None, win_rates=None, config=CONFIG
    )
    row = gaps.iloc[0]
    assert row["target"] == pytest.approx(400.0)
    assert row["target_full"] == 600.0 and row["proration_factor"] == 1.0
    assert row["ramp_factor"] == pytest.approx(400 / 600)


def test_the_445_calendar_derives_from_its_own_months() -> None:
    """In a 4-4-5 calendar a quarter's months are 4, 4 and 5 weeks, and FY2026 has a 53rd
    week, which makes its December 6 weeks: 28, 28 and 42 days. The quarter still sums its
    months, and a level is weighted by those lengths."""
    cal = FiscalCalendar(kind="445")
    config = GapConfig(as_of=AS_OF, cal=cal)
    months = rollup_parts(["2026-Q4"], cal=cal)[1:]
    assert len(months) == 3
    frame = targets(
        *monthly(1, dict(zip(months, (1.0, 2.0, 3.0), strict=True))),
        *monthly(1, dict(zip(months, (0.2, 0.2, 0.5), strict=True)), metric="win_rate"),
    )
    out = derive_rollup_targets(frame, periods=["2026-Q4"], reps=NO_REPS, config=config)
    by_metric = out.set_index("metric")["value"]
    assert by_metric["won_revenue"] == 6.0
    assert [parse_period(m, cal).days for m in months] == [28, 28, 42]
    assert by_metric["win_rate"] == pytest.approx((0.2 * 28 + 0.2 * 28 + 0.5 * 42) / 98)


@pytest.mark.parametrize("cal", [FiscalCalendar(), FiscalCalendar(start_month=4, kind="445")])
def test_a_derived_target_always_equals_the_sum_of_its_months_as_judged(cal) -> None:
    """Random start dates around the year and random monthly quotas: every derived quarter
    and year target is the sum of its months' effective targets from compute_gaps."""
    rng = np.random.default_rng(16)
    config = GapConfig(as_of=AS_OF, cal=cal)
    periods = rollup_parts(["FY2026"], cal=cal)
    months = [p for p in periods if parse_period(p, cal).kind == "month"]
    n = 40
    starts = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 800, n), unit="D")
    people = pd.DataFrame(
        {"rep_id": pd.array(range(1, n + 1), dtype="Int64"), "start_date": starts}
    )
    rows = [
        {"target_id": i * 100 + j, "rep_id": i, "period": m, "value": float(rng.integers(0, 9))}
        for i in range(1, n + 1)
        for j, m in enumerate(months)
        if parse_period(m, cal).end >= starts[i - 1].date()
    ]
    out = derive_rollup_targets(targets(*rows), periods=periods, reps=people, config=config)
    gaps = compute_gaps(
        out, _no_actuals(), reps=people, pipeline=None, win_rates=None, config=config
    )
    monthly_target = gaps[gaps["period_kind"] == "month"].set_index(["rep_id", "period"])["target"]
    derived = gaps[gaps["target_derived_from"].notna()]
    assert len(derived) > n  # quarters and years of most reps
    for row in derived.itertuples():
        parts = [monthly_target[(row.rep_id, m)] for m in row.target_derived_from.split(",")]
        assert row.target == pytest.approx(sum(parts), abs=1e-9), row
