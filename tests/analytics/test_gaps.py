"""Tests for analytics.gaps, with expectations worked out by hand next to each case.

Calendar facts used throughout (calendar fiscal year unless stated):
* as_of = Fri 2026-11-20. November 2026 has 30 days, starts on a Sunday and has 21 weekdays;
  Mon 2..Fri 20 are 15 of them. Day 20 of 30 -> linear share 20/30 = 2/3.
* 2026-Q4 = Oct 1..Dec 31 = 31 + 30 + 31 = 92 days; by Nov 20: 31 + 20 = 51 days elapsed.
* FY2026 = calendar 2026 (365 days); Nov 20 is day 304 + 20 = 324.
* ISO week 2026-W47 = Mon Nov 16..Sun Nov 22; by Fri Nov 20: 5 of 7 days.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.coverage import open_pipeline, trailing_win_rate
from analytics.gaps import GAP_COLUMNS, GapConfig, compute_gaps
from analytics.metrics import METRIC_COLUMNS
from analytics.pacing import seasonal_shares
from analytics.periods import FiscalCalendar, parse_period

AS_OF = date(2026, 11, 20)
NAN = math.nan
CAL1 = FiscalCalendar()
CAL2 = FiscalCalendar(start_month=2)


# --------------------------------------------------------------------------- helpers


def targets(*rows: dict[str, Any]) -> pd.DataFrame:
    """Target rows; each needs target_id, metric, period, value and rep_id or team_id."""
    frame = pd.DataFrame(
        [{"rep_id": None, "team_id": None, **r} for r in rows],
        columns=["target_id", "rep_id", "team_id", "metric", "period", "value"],
    )
    frame["rep_id"] = frame["rep_id"].astype("Int64")
    frame["team_id"] = frame["team_id"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    return frame


def actuals(*rows: dict[str, Any]) -> pd.DataFrame:
    """A wide metrics frame; metrics not given are NaN (as levels with no data are)."""
    frame = pd.DataFrame(
        [{"subject_type": "rep", **r} for r in rows],
        columns=["subject_type", "subject_id", "period", *METRIC_COLUMNS],
    )
    frame[list(METRIC_COLUMNS)] = frame[list(METRIC_COLUMNS)].astype("float64")
    return frame


def reps(**start_dates: str | None) -> pd.DataFrame:
    """reps(r1="2026-11-10") -> rep 1 started on that day."""
    return pd.DataFrame(
        {
            "rep_id": [int(k[1:]) for k in start_dates],
            "start_date": pd.to_datetime(list(start_dates.values())),
        }
    )


NO_REPS = reps()


def pipeline_frame(*rows: dict[str, Any]) -> pd.DataFrame:
    cols = ["open_amount", "weighted_amount", "open_deals", "weighted_deals"]
    return pd.DataFrame(
        [{"subject_type": "rep", **{c: 0.0 for c in cols}, **r} for r in rows],
        columns=["subject_type", "subject_id", "period", *cols],
    )


def win_rates_frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"subject_type": "rep", **r} for r in rows],
        columns=["subject_type", "subject_id", "win_rate_value", "win_rate"],
    )


def run(
    tgt: pd.DataFrame,
    act: pd.DataFrame,
    *,
    reps_frame: pd.DataFrame = NO_REPS,
    pipeline: pd.DataFrame | None = None,
    win_rates: pd.DataFrame | None = None,
    shares: pd.DataFrame | None = None,
    **config: Any,
) -> pd.DataFrame:
    cfg = GapConfig(**{"as_of": AS_OF, **config})
    return compute_gaps(
        tgt,
        act,
        reps=reps_frame,
        pipeline=pipeline,
        win_rates=win_rates,
        config=cfg,
        shares=shares,
    )


def by_id(out: pd.DataFrame, target_id: int) -> pd.Series:
    hits = out[out["target_id"] == target_id]
    assert len(hits) == 1
    return hits.iloc[0]


def expect(row: pd.Series, **fields: Any) -> None:
    for name, want in fields.items():
        got = row[name]
        if isinstance(want, float) and math.isnan(want):
            assert pd.isna(got), f"{name}: expected NaN, got {got!r}"
        elif isinstance(want, (int, float)) and not isinstance(want, bool):
            assert not pd.isna(got), f"{name}: expected {want}, got NaN"
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), f"{name}: {got} != {want}"
        else:
            assert got == want, f"{name}: expected {want!r}, got {got!r}"


# ------------------------------------------------------------------- the whole row


def test_every_field_for_a_linear_month_target() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 30000,
            }
        ),
        actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 12000}),
        pipeline=pipeline_frame(
            {"subject_id": 1, "period": "2026-11", "open_amount": 10000, "weighted_amount": 4000}
        ),
        win_rates=win_rates_frame({"subject_id": 1, "win_rate_value": 0.25, "win_rate": 0.5}),
    )
    assert list(out.columns) == list(GAP_COLUMNS)
    row = by_id(out, 1)
    expect(
        row,
        subject_type="rep",
        rep_id=1,
        metric="won_revenue",
        period="2026-11",
        period_kind="month",
        period_start=pd.Timestamp("2026-11-01"),
        period_end=pd.Timestamp("2026-11-30"),
        target_full=30000.0,
        proration_factor=1.0,
        ramp_factor=1.0,
        target=30000.0,
        target_note="",
        actual=12000.0,
        gap=18000.0,  # 30000 - 12000
        attainment=0.4,  # 12000 / 30000
        elapsed_fraction=2 / 3,
        pacing="linear",
        expected_to_date=20000.0,  # 30000 x 2/3
        pace_gap=-8000.0,  # 12000 - 20000
        projected=18000.0,  # 12000 / (2/3)
        open_pipeline=10000.0,
        weighted_pipeline=4000.0,
        projected_with_pipeline=16000.0,  # 12000 + 4000
        coverage=10000 / 18000,
        coverage_needed=4.0,  # 1 / 0.25
        status="at_risk",  # 12000 < 0.9 x 20000 = 18000
    )
    assert pd.isna(row["team_id"])


@pytest.mark.parametrize(
    ("actual", "period", "status"),
    [
        (17999.0, "2026-11", "at_risk"),  # just below 0.9 x 20000
        (18000.0, "2026-11", "on_track"),  # "at or above" is on track
        (29999.0, "2026-11", "on_track"),
        (30000.0, "2026-11", "achieved"),  # additive: achieved as soon as it is met
        (45000.0, "2026-11", "achieved"),
        (29999.0, "2026-10", "missed"),  # October has ended
        (30000.0, "2026-10", "achieved"),
    ],
)
def test_additive_status(actual: float, period: str, status: str) -> None:
    out = run(
        targets(
            {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": period, "value": 3e4}
        ),
        actuals({"subject_id": 1, "period": period, "won_revenue": actual}),
    )
    assert by_id(out, 1)["status"] == status


def test_on_track_min_is_configurable() -> None:
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 3e4}
    )
    act = actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 15000})
    # expected 20000: 15000 is 75% of it
    assert by_id(run(tgt, act), 1)["status"] == "at_risk"
    assert by_id(run(tgt, act, on_track_min=0.75), 1)["status"] == "on_track"


def test_ended_period() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-10",
                "value": 3e4,
            }
        ),
        actuals({"subject_id": 1, "period": "2026-10", "won_revenue": 25000}),
        pipeline=pipeline_frame(),  # nothing can be due in a period that has ended
    )
    expect(
        by_id(out, 1),
        elapsed_fraction=1.0,
        expected_to_date=30000.0,
        pace_gap=-5000.0,
        projected=25000.0,  # = actual once the period is over
        gap=5000.0,
        open_pipeline=0.0,
        weighted_pipeline=0.0,
        projected_with_pipeline=25000.0,
        coverage=NAN,  # nothing of the period remains to cover
        status="missed",
    )


def test_first_and_last_day_of_a_period() -> None:
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 3e4},
        {"target_id": 2, "rep_id": 1, "metric": "win_rate", "period": "2026-11", "value": 0.3},
    )
    act = actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 29000, "win_rate": 0.2})
    # the last day still counts as in progress: nothing is missed before the period has ended
    last = run(tgt, act, as_of=date(2026, 11, 30))
    expect(by_id(last, 1), elapsed_fraction=1.0, expected_to_date=3e4, status="on_track")
    expect(by_id(last, 2), elapsed_fraction=1.0, status="at_risk")
    after = run(tgt, act, as_of=date(2026, 12, 1))
    assert list(after["status"]) == ["missed", "missed"]
    # the first day counts as a whole day elapsed
    first = run(tgt, act, as_of=date(2026, 11, 1))
    expect(by_id(first, 1), elapsed_fraction=1 / 30, expected_to_date=1000.0, projected=870000.0)


def test_period_not_started() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-12",
                "value": 3e4,
            },
            {"target_id": 2, "rep_id": 1, "metric": "win_rate", "period": "2026-12", "value": 0.3},
        ),
        actuals(),
        pipeline=pipeline_frame(
            {"subject_id": 1, "period": "2026-12", "open_amount": 5000, "weighted_amount": 1500}
        ),
    )
    expect(
        by_id(out, 1),
        period_start=pd.Timestamp("2026-12-01"),
        actual=0.0,
        elapsed_fraction=0.0,
        expected_to_date=0.0,
        pace_gap=0.0,
        projected=NAN,  # no time has elapsed, no run rate
        gap=30000.0,
        projected_with_pipeline=1500.0,  # 0 + weighted open pipeline due in December
        coverage=5000 / 30000,
        status="on_track",
    )
    expect(
        by_id(out, 2),
        actual=NAN,
        expected_to_date=0.0,
        projected=NAN,
        pacing="level",
        status="on_track",
    )


def test_zero_target_is_achieved() -> None:
    out = run(
        targets(
            {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 0},
            {"target_id": 2, "rep_id": 1, "metric": "won_revenue", "period": "2026-10", "value": 0},
        ),
        actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 500}),
        pipeline=pipeline_frame({"subject_id": 1, "period": "2026-11", "open_amount": 100}),
    )
    expect(
        by_id(out, 1),
        target=0.0,
        actual=500.0,
        gap=-500.0,
        attainment=NAN,
        expected_to_date=0.0,
        coverage=NAN,  # nothing remains
        status="achieved",
    )
    expect(by_id(out, 2), actual=0.0, attainment=NAN, status="achieved")


def test_missing_additive_actual_is_zero() -> None:
    out = run(
        targets(
            {"target_id": 1, "rep_id": 7, "metric": "activities", "period": "2026-11", "value": 60}
        ),
        actuals({"subject_id": 1, "period": "2026-11", "activities": 99}),  # another rep
    )
    expect(
        by_id(out, 1),
        actual=0.0,
        gap=60.0,
        attainment=0.0,
        expected_to_date=40.0,  # 60 x 2/3
        pace_gap=-40.0,
        projected=0.0,
        status="at_risk",
    )


# ----------------------------------------------------------------------------- pacing


def test_working_days_pacing_with_holidays() -> None:
    # Holidays Wed Nov 11 (elapsed) and Thu Nov 26 (ahead); Sat Nov 21 is a weekend anyway.
    # Working days: 21 - 2 = 19 in November, 15 - 1 = 14 elapsed by Fri Nov 20.
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 19e3,
            },
            {"target_id": 2, "rep_id": 1, "metric": "calls", "period": "2026-W47", "value": 70},
        ),
        actuals(
            {"subject_id": 1, "period": "2026-11", "won_revenue": 12600},
            {"subject_id": 1, "period": "2026-W47", "calls": 10},
        ),
        pacing="working_days",
        holidays=(
            date(2026, 11, 11),
            date(2026, 11, 26),
            date(2026, 11, 21),
            # the whole working week of W47 is off, so that week falls back to calendar days
            date(2026, 11, 16),
            date(2026, 11, 17),
            date(2026, 11, 18),
            date(2026, 11, 19),
            date(2026, 11, 20),
        ),
    )
    # November now loses Nov 16-20 too: 19 - 5 = 14 working days, 14 - 5 = 9 elapsed.
    expect(
        by_id(out, 1),
        pacing="working_days",
        elapsed_fraction=9 / 14,
        expected_to_date=19000 * 9 / 14,
        projected=12600 * 14 / 9,  # = 19600
        status="on_track",  # 12600 >= 0.9 x 12214.29
    )
    expect(
        by_id(out, 2),
        pacing="linear",
        elapsed_fraction=5 / 7,
        expected_to_date=50.0,  # 70 x 5/7
        projected=14.0,  # 10 / (5/7)
        status="at_risk",
    )


def test_working_days_pacing_single_holiday() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 19e3,
            }
        ),
        actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 7000}),
        pacing="working_days",
        holidays=(date(2026, 11, 26),),
    )
    # 21 - 1 = 20 working days, 15 elapsed: 3/4
    expect(
        by_id(out, 1),
        pacing="working_days",
        elapsed_fraction=0.75,
        expected_to_date=14250.0,
        pace_gap=-7250.0,
        projected=7000 / 0.75,
        status="at_risk",
    )


# History for rep 1, learned at as_of 2026-11-20 with lookback 2 (September and October):
#   Sep (30 days): 100 on Sep 10 (d=9), 300 on Sep 30 (d=29)
#       -> c = 0 before d=9, 0.25 for d=9..28, 1 at d=29
#   Oct (31 days): 200 on Oct 21 (d=20), 200 on Oct 31 (d=30)
#       -> c = 0 before d=20, 0.5 for d=20..29, 1 at d=30
#   Aug (outside the lookback) and Nov (the current period) are ignored.
# Rep 2 has bookings in October only (one usable period -> no curve).
# Rep 3 has September bookings and only a zero-value October booking (skipped -> no curve).
WON_HISTORY = pd.DataFrame(
    {
        "rep_id": [1, 1, 1, 1, 1, 1, 2, 2, 3, 3],
        "close_date": pd.to_datetime(
            [
                "2026-09-10",
                "2026-09-30",
                "2026-10-21",
                "2026-10-31",
                "2026-08-05",
                "2026-11-02",
                "2026-10-03",
                "2026-10-30",
                "2026-09-15",
                "2026-10-15",
            ]
        ),
        "value": [100.0, 300, 200, 200, 1000, 1000, 50, 50, 70, 0],
    }
)


def learned_shares() -> pd.DataFrame:
    return seasonal_shares(
        WON_HISTORY, kind="month", cal=CAL1, as_of=AS_OF, key="rep_id", lookback=2
    )


def share_at(shares: pd.DataFrame, position: float) -> float:
    hit = shares[np.isclose(shares["position"], position, rtol=0, atol=1e-12)]
    assert len(hit) == 1
    return float(hit["share"].iloc[0])


def test_seasonal_shares_curve() -> None:
    shares = learned_shares()
    assert list(shares.columns) == ["rep_id", "period_kind", "position", "share", "periods_used"]
    assert set(shares["rep_id"]) == {1}  # reps 2 and 3 have fewer than 2 usable periods
    assert set(shares["period_kind"]) == {"month"}
    assert set(shares["periods_used"]) == {2}
    # grid: j/30 (j=1..30) and j/31 (j=1..31), sharing only 1.0
    assert len(shares) == 30 + 31 - 1
    assert shares["position"].is_monotonic_increasing
    # x = 10/30: Sep at d=9 -> 0.25; Oct at t = 10/30 x 31 = 10.33 days -> 0
    assert share_at(shares, 10 / 30) == pytest.approx(0.125)
    # x = 20/30: Sep d=19 -> 0.25; Oct t = 20.67 days, between c(19)=0 and c(20)=0.5 -> 1/3
    assert share_at(shares, 20 / 30) == pytest.approx((0.25 + 1 / 3) / 2)  # 7/24
    # x = 21/31: Oct d=20 -> 0.5; Sep t = 20.32 days, between c(19)=0.25 and c(20)=0.25
    assert share_at(shares, 21 / 31) == pytest.approx(0.375)
    # x = 30/31: Oct d=29 -> 0.5; Sep t = 29.03 days, 0.25 + 0.03 x (1 - 0.25)
    assert share_at(shares, 30 / 31) == pytest.approx((0.25 + (30 * 30 / 31 - 29) * 0.75 + 0.5) / 2)
    assert share_at(shares, 1.0) == pytest.approx(1.0)


def test_seasonal_shares_lookback_and_empty() -> None:
    # lookback 1 leaves October only: nobody has 2 usable periods
    none = seasonal_shares(
        WON_HISTORY, kind="month", cal=CAL1, as_of=AS_OF, key="rep_id", lookback=1
    )
    assert none.empty
    assert list(none.columns) == ["rep_id", "period_kind", "position", "share", "periods_used"]
    # lookback 3 adds August for rep 1 (1000 on Aug 5 = d=4 of 31): three curves averaged
    three = seasonal_shares(
        WON_HISTORY, kind="month", cal=CAL1, as_of=AS_OF, key="rep_id", lookback=3
    )
    assert set(three["periods_used"]) == {3}
    # at x = 20/30: Aug 1.0, Sep 0.25, Oct 1/3
    assert share_at(three, 20 / 30) == pytest.approx((1 + 0.25 + 1 / 3) / 3)


def as_subjects(frame: pd.DataFrame, key: str, subject_type: str) -> pd.DataFrame:
    return frame.rename(columns={key: "subject_id"}).assign(subject_type=subject_type)


def test_seasonal_pacing_and_fallback() -> None:
    rep_curves = as_subjects(learned_shares(), "rep_id", "rep")
    team_curves = rep_curves.assign(subject_type="team", subject_id=10)
    shares = pd.concat([rep_curves, team_curves], ignore_index=True)
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 24e3},
        {"target_id": 2, "rep_id": 2, "metric": "won_revenue", "period": "2026-11", "value": 24e3},
        {
            "target_id": 3,
            "team_id": 10,
            "metric": "won_revenue",
            "period": "2026-11",
            "value": 24e3,
        },
        # team 1 is not rep 1: no curve
        {"target_id": 4, "team_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 24e3},
        # rep 1 has a month curve but no quarter curve
        {"target_id": 5, "rep_id": 1, "metric": "won_revenue", "period": "2026-Q4", "value": 92e3},
        {"target_id": 6, "rep_id": 1, "metric": "won_revenue", "period": "2026-10", "value": 24e3},
        {"target_id": 7, "rep_id": 1, "metric": "won_revenue", "period": "2026-12", "value": 24e3},
        {"target_id": 8, "rep_id": 1, "metric": "win_rate", "period": "2026-11", "value": 0.3},
    )
    act = actuals(
        {"subject_id": 1, "period": "2026-11", "won_revenue": 6300, "win_rate": 0.3},
        {"subject_id": 2, "period": "2026-11", "won_revenue": 6300},
        {"subject_type": "team", "subject_id": 10, "period": "2026-11", "won_revenue": 6000},
        {"subject_type": "team", "subject_id": 1, "period": "2026-11", "won_revenue": 6300},
    )
    out = run(tgt, act, pacing="seasonal", shares=shares)
    # curve at 20/30 is 7/24: expected 24000 x 7/24 = 7000; 6300 >= 0.9 x 7000 = 6300
    expect(
        by_id(out, 1),
        pacing="seasonal",
        elapsed_fraction=7 / 24,
        expected_to_date=7000.0,
        pace_gap=-700.0,
        projected=6300 * 24 / 7,  # = 21600
        status="on_track",
    )
    # linear fallback: expected 16000, 6300 < 14400
    expect(
        by_id(out, 2),
        pacing="linear",
        elapsed_fraction=2 / 3,
        expected_to_date=16000.0,
        projected=9450.0,
        status="at_risk",
    )
    expect(by_id(out, 3), pacing="seasonal", expected_to_date=7000.0, status="at_risk")
    expect(by_id(out, 4), pacing="linear", expected_to_date=16000.0)
    expect(by_id(out, 5), pacing="linear", elapsed_fraction=51 / 92)
    expect(by_id(out, 6), pacing="seasonal", elapsed_fraction=1.0, expected_to_date=24000.0)
    expect(by_id(out, 7), pacing="seasonal", elapsed_fraction=0.0, expected_to_date=0.0)
    expect(by_id(out, 8), pacing="level", elapsed_fraction=2 / 3, expected_to_date=0.3)


def test_seasonal_without_shares_is_linear() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 3e4,
            }
        ),
        actuals(),
        pacing="seasonal",
    )
    expect(by_id(out, 1), pacing="linear", elapsed_fraction=2 / 3, expected_to_date=20000.0)


# -------------------------------------------------------------------- proration and ramp


def test_proration_and_ramp_for_a_month() -> None:
    people = reps(
        r3="2026-11-10",  # starts inside November: month 1 of ramp
        r4="2026-10-15",  # November is ramp month 2
        r5="2026-06-01",  # November is month 6: past the 4-month schedule
        r6="2026-12-05",  # starts after November
        r7=None,  # no start date known
    )
    rows = [
        {"target_id": r, "rep_id": r, "metric": "won_revenue", "period": "2026-11", "value": 3e4}
        for r in (3, 4, 5, 6, 7, 8)  # rep 8 is not in the reps frame
    ]
    out = run(targets(*rows), actuals(), reps_frame=people)
    expect(
        by_id(out, 3),
        proration_factor=0.7,  # Nov 10..30 = 21 of 30 days
        ramp_factor=0.2,
        target=4200.0,  # 30000 x 0.7 x 0.2
        target_note=(
            "prorated: started 2026-11-10 (21 of 30 days); ramp month 1: 20% of full target"
        ),
        # paced over the days the rep has been here: Nov 10..20 is 11 of their 21 days
        elapsed_fraction=11 / 21,
        expected_to_date=2200.0,  # 4200 x 11/21
        gap=4200.0,
    )
    expect(
        by_id(out, 4),
        proration_factor=1.0,
        ramp_factor=0.4,
        target=12000.0,
        target_note="ramp month 2: 40% of full target",
    )
    expect(by_id(out, 5), proration_factor=1.0, ramp_factor=1.0, target=30000.0, target_note="")
    expect(
        by_id(out, 6),
        proration_factor=0.0,
        target=0.0,
        target_note="prorated: starts 2026-12-05, after the period (factor 0)",
        status="achieved",  # a zero target
    )
    for rep in (7, 8):
        expect(by_id(out, rep), proration_factor=1.0, ramp_factor=1.0, target=30000.0)


def test_proration_and_ramp_for_a_quarter() -> None:
    people = reps(r3="2026-11-10", r4="2026-10-15", r5="2026-08-20", r9="2026-06-01")
    rows = [
        {"target_id": r, "rep_id": r, "metric": "won_revenue", "period": "2026-Q4", "value": 92e3}
        for r in (3, 4, 5, 9)
    ]
    out = run(targets(*rows), actuals(), reps_frame=people)
    # Rep 3: employed Nov 10..Dec 31 = 21 + 31 = 52 of 92 days;
    # ramp: 21 days of month 1 (20%) + 31 days of month 2 (40%) = 16.6 / 52.
    expect(
        by_id(out, 3),
        proration_factor=52 / 92,
        ramp_factor=16.6 / 52,
        target=16600.0,  # 92000 x 52/92 x 16.6/52
        target_note=(
            "prorated: started 2026-11-10 (52 of 92 days); "
            "ramp months 1-2: 31.9% of full target (day-weighted)"
        ),
    )
    # Rep 4: Oct 15..Dec 31 = 17 + 30 + 31 = 78 days;
    # ramp 17 x 0.2 + 30 x 0.4 + 31 x 0.6 = 34 -> 34/78.
    expect(
        by_id(out, 4),
        proration_factor=78 / 92,
        ramp_factor=34 / 78,
        target=34000.0,
        target_note=(
            "prorated: started 2026-10-15 (78 of 92 days); "
            "ramp months 1-3: 43.6% of full target (day-weighted)"
        ),
    )
    # Rep 5 started in August: Oct is month 3 (60%), Nov month 4 (80%), Dec month 5 (100%):
    # (31 x 0.6 + 30 x 0.8 + 31 x 1) / 92 = 73.6 / 92 = 0.8.
    expect(
        by_id(out, 5),
        proration_factor=1.0,
        ramp_factor=0.8,
        target=73600.0,
        target_note="ramp months 3-5: 80% of full target (day-weighted)",
    )
    expect(by_id(out, 9), proration_factor=1.0, ramp_factor=1.0, target_note="")


def test_custom_ramp_schedule() -> None:
    people = reps(r3="2026-11-10", r4="2026-10-15")
    rows = [
        {"target_id": r, "rep_id": r, "metric": "calls", "period": "2026-11", "value": 300}
        for r in (3, 4)
    ]
    out = run(targets(*rows), actuals(), reps_frame=people, ramp_schedule=(0.5,))
    expect(by_id(out, 3), proration_factor=0.7, ramp_factor=0.5, target=105.0)
    expect(by_id(out, 4), ramp_factor=1.0, target=300.0, target_note="")
    no_ramp = run(targets(*rows), actuals(), reps_frame=people, ramp_schedule=())
    expect(by_id(no_ramp, 3), proration_factor=0.7, ramp_factor=1.0, target=210.0)


def test_levels_and_team_targets_are_not_prorated() -> None:
    people = reps(r3="2026-11-10", r10="2026-11-10")
    out = run(
        targets(
            {"target_id": 1, "rep_id": 3, "metric": "win_rate", "period": "2026-11", "value": 0.3},
            # team 10 shares an id with rep 10, whose start date must not apply
            {
                "target_id": 2,
                "team_id": 10,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 5e4,
            },
        ),
        actuals(),
        reps_frame=people,
    )
    for target_id, full in ((1, 0.3), (2, 50000.0)):
        expect(
            by_id(out, target_id),
            proration_factor=1.0,
            ramp_factor=1.0,
            target=full,
            target_note="",
        )


# ------------------------------------------------------------- levels, lower is better


@pytest.mark.parametrize(
    ("period", "actual", "gap", "attainment", "pace_gap", "status"),
    [
        # in progress: a level is compared with the target itself
        ("2026-11", 40.0, 10.0, 0.75, -10.0, "at_risk"),  # 40 x 0.9 = 36 > 30
        ("2026-11", 32.0, 2.0, 30 / 32, -2.0, "on_track"),  # 32 x 0.9 = 28.8 <= 30
        ("2026-11", 25.0, -5.0, 1.2, 5.0, "on_track"),  # better than target, not yet decided
        ("2026-11", NAN, NAN, NAN, NAN, "at_risk"),  # no data
        # ended
        ("2026-10", 25.0, -5.0, 1.2, 5.0, "achieved"),
        ("2026-10", 30.0, 0.0, 1.0, 0.0, "achieved"),
        ("2026-10", 35.0, 5.0, 30 / 35, -5.0, "missed"),
        ("2026-10", NAN, NAN, NAN, NAN, "missed"),
    ],
)
def test_lower_is_better_metric(
    period: str, actual: float, gap: float, attainment: float, pace_gap: float, status: str
) -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "sales_cycle_days",
                "period": period,
                "value": 30,
            }
        ),
        actuals({"subject_id": 1, "period": period, "sales_cycle_days": actual}),
        pipeline=pipeline_frame({"subject_id": 1, "period": period, "open_amount": 1e6}),
        win_rates=win_rates_frame({"subject_id": 1, "win_rate_value": 0.5, "win_rate": 0.5}),
    )
    expect(
        by_id(out, 1),
        actual=actual,
        gap=gap,
        attainment=attainment,
        expected_to_date=30.0,
        pace_gap=pace_gap,
        projected=actual,
        pacing="level",
        open_pipeline=NAN,  # pipeline cannot move a sales cycle
        weighted_pipeline=NAN,
        projected_with_pipeline=actual,
        coverage=NAN,
        coverage_needed=NAN,
        status=status,
    )


@pytest.mark.parametrize(
    ("period", "actual", "status"),
    [
        ("2026-11", 0.5, "on_track"),  # above target mid-period: still only on track
        ("2026-11", 0.27, "on_track"),  # 0.27 = 0.9 x 0.3
        ("2026-11", 0.26, "at_risk"),
        ("2026-11", NAN, "at_risk"),
        ("2026-10", 0.35, "achieved"),
        ("2026-10", 0.2, "missed"),
        ("2026-10", NAN, "missed"),
    ],
)
def test_non_additive_metric(period: str, actual: float, status: str) -> None:
    out = run(
        targets(
            {"target_id": 1, "rep_id": 1, "metric": "win_rate", "period": period, "value": 0.3}
        ),
        actuals({"subject_id": 1, "period": period, "win_rate": actual}),
        pacing="working_days",  # levels are never paced
    )
    row = by_id(out, 1)
    expect(
        row,
        pacing="level",
        elapsed_fraction=2 / 3 if period == "2026-11" else 1.0,
        expected_to_date=0.3,
        projected=actual,
        gap=0.3 - actual,
        attainment=actual / 0.3,
        pace_gap=actual - 0.3,
        status=status,
    )


# ------------------------------------------------------------------ pipeline coverage


def test_coverage_for_won_deals_and_metrics_without_pipeline() -> None:
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_deals", "period": "2026-11", "value": 10},
        {"target_id": 2, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 1e4},
        {"target_id": 3, "rep_id": 1, "metric": "activities", "period": "2026-11", "value": 90},
        {"target_id": 4, "rep_id": 2, "metric": "won_revenue", "period": "2026-11", "value": 1e4},
        {"target_id": 5, "rep_id": 3, "metric": "won_revenue", "period": "2026-11", "value": 1e4},
    )
    act = actuals(
        {
            "subject_id": 1,
            "period": "2026-11",
            "won_deals": 4,
            "won_revenue": 12e3,
            "activities": 30,
        },
        {"subject_id": 2, "period": "2026-11", "won_revenue": 2000},
    )
    pipe = pipeline_frame(
        {
            "subject_id": 1,
            "period": "2026-11",
            "open_amount": 9000,
            "weighted_amount": 3000,
            "open_deals": 12,
            "weighted_deals": 3.0,
        },
        {"subject_id": 2, "period": "2026-11", "open_amount": 24000, "weighted_amount": 6000},
    )
    rates = win_rates_frame(
        {"subject_id": 1, "win_rate_value": 0.25, "win_rate": 0.4},
        {"subject_id": 2, "win_rate_value": 0.0, "win_rate": 0.0},
    )
    out = run(tgt, act, pipeline=pipe, win_rates=rates)
    # won_deals: counts and the count win rate
    expect(
        by_id(out, 1),
        open_pipeline=12.0,
        weighted_pipeline=3.0,
        projected_with_pipeline=7.0,  # 4 + 3
        coverage=2.0,  # 12 open / (10 - 4) remaining
        coverage_needed=2.5,  # 1 / 0.4
        projected=6.0,  # 4 / (2/3)
    )
    # already achieved: nothing remains to cover
    expect(by_id(out, 2), status="achieved", coverage=NAN, projected_with_pipeline=15000.0)
    # activities: pipeline cannot move it
    expect(
        by_id(out, 3),
        open_pipeline=NAN,
        weighted_pipeline=NAN,
        projected=45.0,
        projected_with_pipeline=45.0,
        coverage=NAN,
        coverage_needed=NAN,
    )
    # a zero win rate gives no finite coverage need
    expect(by_id(out, 4), coverage=24000 / 8000, coverage_needed=NAN, projected_with_pipeline=8e3)
    # rep 3: no pipeline row (0) and no win rate (unknown)
    expect(
        by_id(out, 5),
        open_pipeline=0.0,
        weighted_pipeline=0.0,
        projected_with_pipeline=0.0,
        coverage=0.0,
        coverage_needed=NAN,
    )


def test_no_coverage_once_the_period_has_ended() -> None:
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-10", "value": 1e4},
        {"target_id": 2, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 1e4},
    )
    act = actuals(
        {"subject_id": 1, "period": "2026-10", "won_revenue": 4000},
        {"subject_id": 1, "period": "2026-11", "won_revenue": 4000},
    )
    rates = win_rates_frame({"subject_id": 1, "win_rate_value": 0.25, "win_rate": 0.4})
    out = run(tgt, act, pipeline=pipeline_frame(), win_rates=rates)
    # October has ended: nothing can still close in it, and today's win rate is not its own
    expect(by_id(out, 1), status="missed", coverage=NAN, coverage_needed=NAN)
    expect(by_id(out, 2), coverage=0.0, coverage_needed=4.0)  # 0 open / 6000; 1 / 0.25


def test_without_pipeline_or_win_rates() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "rep_id": 1,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 3e4,
            }
        ),
        actuals({"subject_id": 1, "period": "2026-11", "won_revenue": 12000}),
    )
    expect(
        by_id(out, 1),
        projected=18000.0,
        open_pipeline=NAN,
        weighted_pipeline=NAN,
        projected_with_pipeline=NAN,
        coverage=NAN,
        coverage_needed=NAN,
    )


# ----------------------------------------------------------------- subjects and periods


def test_team_target() -> None:
    out = run(
        targets(
            {
                "target_id": 1,
                "team_id": 10,
                "metric": "won_revenue",
                "period": "2026-11",
                "value": 5e4,
            }
        ),
        actuals(
            {"subject_type": "team", "subject_id": 10, "period": "2026-11", "won_revenue": 20000},
            {"subject_type": "rep", "subject_id": 10, "period": "2026-11", "won_revenue": 99999},
        ),
        pipeline=pipeline_frame(
            {"subject_type": "team", "subject_id": 10, "period": "2026-11", "open_amount": 6e4},
            {"subject_type": "rep", "subject_id": 10, "period": "2026-11", "open_amount": 1.0},
        ),
        win_rates=win_rates_frame(
            {"subject_type": "team", "subject_id": 10, "win_rate_value": 0.5, "win_rate": 0.5}
        ),
    )
    row = by_id(out, 1)
    expect(
        row,
        subject_type="team",
        team_id=10,
        actual=20000.0,
        gap=30000.0,
        expected_to_date=50000 * 2 / 3,
        open_pipeline=60000.0,
        coverage=2.0,  # 60000 / 30000
        coverage_needed=2.0,
        status="at_risk",  # 20000 < 0.9 x 33333
    )
    assert pd.isna(row["rep_id"])


def test_mixed_period_kinds_in_one_call() -> None:
    tgt = targets(
        {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2026-11", "value": 300},
        {"target_id": 2, "rep_id": 1, "metric": "won_revenue", "period": "2026-q4", "value": 920},
        {"target_id": 3, "rep_id": 1, "metric": "won_revenue", "period": "fy2026", "value": 3650},
        {"target_id": 4, "rep_id": 1, "metric": "won_revenue", "period": "2026-W47", "value": 70},
    )
    act = actuals(
        {"subject_id": 1, "period": "2026-11", "won_revenue": 100},
        {"subject_id": 1, "period": "2026-Q4", "won_revenue": 200},
        {"subject_id": 1, "period": "FY2026", "won_revenue": 3000},
        {"subject_id": 1, "period": "2026-W47", "won_revenue": 40},
    )
    out = run(tgt, act)
    assert list(out["target_id"]) == [1, 2, 3, 4]
    assert list(out["period"]) == ["2026-11", "2026-Q4", "FY2026", "2026-W47"]
    assert list(out["period_kind"]) == ["month", "quarter", "year", "week"]
    assert list(out["period_start"]) == [
        pd.Timestamp(d) for d in ("2026-11-01", "2026-10-01", "2026-01-01", "2026-11-16")
    ]
    assert list(out["period_end"]) == [
        pd.Timestamp(d) for d in ("2026-11-30", "2026-12-31", "2026-12-31", "2026-11-22")
    ]
    expect(by_id(out, 1), actual=100.0, elapsed_fraction=20 / 30, expected_to_date=200.0)
    expect(by_id(out, 2), actual=200.0, elapsed_fraction=51 / 92, expected_to_date=510.0)
    expect(by_id(out, 3), actual=3000.0, elapsed_fraction=324 / 365, expected_to_date=3240.0)
    expect(by_id(out, 4), actual=40.0, elapsed_fraction=5 / 7, expected_to_date=50.0)
    assert list(out["status"]) == ["at_risk", "at_risk", "on_track", "at_risk"]


def test_fiscal_calendar_is_honoured() -> None:
    # start_month=2: 2027-Q4 = Nov 1 2026..Jan 31 2027 (30 + 31 + 31 = 92 days)
    out = run(
        targets(
            {"target_id": 1, "rep_id": 1, "metric": "won_revenue", "period": "2027-Q4", "value": 92}
        ),
        actuals({"subject_id": 1, "period": "2027-Q4", "won_revenue": 10}),
        cal=CAL2,
    )
    expect(
        by_id(out, 1),
        period_start=pd.Timestamp("2026-11-01"),
        period_end=pd.Timestamp("2027-01-31"),
        elapsed_fraction=20 / 92,
        expected_to_date=20.0,
        status="at_risk",  # 10 < 18
    )


def test_output_keeps_target_order() -> None:
    out = run(
        targets(
            {"target_id": 9, "rep_id": 2, "metric": "calls", "period": "2026-11", "value": 1},
            {"target_id": 3, "team_id": 1, "metric": "calls", "period": "2026-10", "value": 1},
            {"target_id": 5, "rep_id": 1, "metric": "calls", "period": "2026-11", "value": 1},
        ),
        actuals(),
    )
    assert list(out["target_id"]) == [9, 3, 5]
    assert list(out["subject_type"]) == ["rep", "team", "rep"]


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="pacing"):
        GapConfig(as_of=AS_OF, pacing="weekly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown metric"):
        run(
            targets(
                {"target_id": 1, "rep_id": 1, "metric": "bogus", "period": "2026-11", "value": 1}
            ),
            actuals(),
        )
    with pytest.raises(ValueError, match="invalid period"):
        run(
            targets(
                {"target_id": 1, "rep_id": 1, "metric": "calls", "period": "26-11", "value": 1}
            ),
            actuals(),
        )
    with pytest.raises(ValueError, match="rep_id or a team_id"):
        run(
            targets({"target_id": 1, "metric": "calls", "period": "2026-11", "value": 1}), actuals()
        )
    with pytest.raises(ValueError, match="more than one row"):
        run(
            targets(
                {"target_id": 1, "rep_id": 1, "metric": "calls", "period": "2026-11", "value": 1}
            ),
            actuals(
                {"subject_id": 1, "period": "2026-11", "calls": 1},
                {"subject_id": 1, "period": "2026-11", "calls": 2},
            ),
        )


# ---------------------------------------------------------------------- open pipeline


def pipeline_deal(
    rep: int,
    amount: float,
    close: str,
    probability: float = 0.5,
    *,
    status: str = "open",
    currency: str = "USD",
    deleted: bool = False,
    team: int = 10,
) -> dict[str, Any]:
    return {
        "rep_id": rep,
        "team_id": team,
        "amount": amount,
        "currency": currency,
        "status": status,
        "close_date": pd.Timestamp(close),
        "probability": probability,
        "is_deleted": deleted,
    }


PIPELINE_DEALS = pd.DataFrame(
    [
        pipeline_deal(1, 1000, "2026-11-19"),  # past due (before as_of): not pipeline
        pipeline_deal(1, 2000, "2026-11-20", 0.5),  # due on as_of itself: counts
        pipeline_deal(1, 100, "2026-11-30", NAN, currency="EUR"),  # 120 USD, no probability
        pipeline_deal(1, 500, "2026-12-05", 0.2),
        pipeline_deal(1, 9, "2026-11-25", 1.0, status="won"),  # closed: not pipeline
        pipeline_deal(1, 9, "2026-11-25", 1.0, deleted=True),
        pipeline_deal(2, 300, "2027-01-02", 1.0, team=20),
    ]
)
PIPELINE_PERIODS = [
    parse_period(label) for label in ("2026-10", "2026-11", "2026-12", "2026-Q4", "FY2026")
]


def test_open_pipeline() -> None:
    out = open_pipeline(
        PIPELINE_DEALS,
        periods=PIPELINE_PERIODS,
        as_of=AS_OF,
        rates={"USD": 1.0, "EUR": 1.2},
    )
    assert list(out.columns) == [
        "rep_id",
        "period",
        "open_amount",
        "weighted_amount",
        "open_deals",
        "weighted_deals",
    ]
    # October has ended (no row); rep 2's January deal is in none of the periods.
    assert list(zip(out["rep_id"], out["period"], strict=True)) == [
        (1, "2026-11"),
        (1, "2026-12"),
        (1, "2026-Q4"),
        (1, "FY2026"),
    ]
    nov = out.iloc[0]
    assert nov["open_amount"] == pytest.approx(2120.0)  # 2000 + 120; the past-due 1000 is out
    assert nov["weighted_amount"] == pytest.approx(1000.0)  # 2000 x 0.5 + 120 x 0
    assert nov["open_deals"] == 2
    assert nov["weighted_deals"] == pytest.approx(0.5)
    dec = out.iloc[1]
    assert (dec["open_amount"], dec["weighted_amount"], dec["open_deals"]) == (500.0, 100.0, 1)
    for quarter_or_year in (out.iloc[2], out.iloc[3]):
        assert quarter_or_year["open_amount"] == pytest.approx(2620.0)
        assert quarter_or_year["weighted_amount"] == pytest.approx(1100.0)
        assert quarter_or_year["open_deals"] == 3
        assert quarter_or_year["weighted_deals"] == pytest.approx(0.7)


def test_open_pipeline_by_team_and_unstarted_period() -> None:
    out = open_pipeline(
        PIPELINE_DEALS,
        periods=[parse_period("2027-01"), parse_period("2026-12")],
        as_of=AS_OF,
        rates={"USD": 1.0, "EUR": 1.2},
        key="team_id",
    )
    # sorted by key, then in the order the periods were given
    assert list(zip(out["team_id"], out["period"], strict=True)) == [
        (10, "2026-12"),
        (20, "2027-01"),
    ]
    assert list(out["open_amount"]) == [500.0, 300.0]
    assert list(out["weighted_amount"]) == [100.0, 300.0]


def test_open_pipeline_edge_cases() -> None:
    empty = open_pipeline(
        PIPELINE_DEALS.iloc[:0], periods=PIPELINE_PERIODS, as_of=AS_OF, rates={"USD": 1.0}
    )
    assert empty.empty
    assert list(empty.columns)[:2] == ["rep_id", "period"]
    # a missing rate is an error for deals that are pipeline...
    with pytest.raises(ValueError, match="EUR"):
        open_pipeline(PIPELINE_DEALS, periods=PIPELINE_PERIODS, as_of=AS_OF, rates={"USD": 1.0})
    # ...but not for deals that are not (here: past due)
    past_due = PIPELINE_DEALS.iloc[[0]].assign(currency="XXX")
    none = open_pipeline(past_due, periods=PIPELINE_PERIODS, as_of=AS_OF, rates={"USD": 1.0})
    assert none.empty


# --------------------------------------------------------------------- trailing win rate


MONTHLY = pd.DataFrame(
    {
        "rep_id": [1, 1, 1, 1, 2, 3],
        "period": ["2025-10", "2025-11", "2026-10", "2026-11", "2026-05", "2026-06"],
        "won_revenue": [1e6, 100.0, 300, 1e6, 0, 0],
        "closed_value": [1e6, 400.0, 400, 1e6, 0, 50],
        "won_deals": [9, 1, 2, 9, 0, 0],
        "closed_deals": [9, 3, 3, 9, 0, 1],
    }
)


def test_trailing_win_rate() -> None:
    # as_of in Nov 2026: the 12 whole months before are Nov 2025..Oct 2026
    out = trailing_win_rate(MONTHLY, as_of=AS_OF)
    assert list(out.columns) == [
        "rep_id",
        "won_revenue",
        "closed_value",
        "won_deals",
        "closed_deals",
        "win_rate_value",
        "win_rate",
    ]
    assert list(out["rep_id"]) == [1, 2, 3]
    r1, r2, r3 = (out.iloc[i] for i in range(3))
    assert r1["win_rate_value"] == pytest.approx(400 / 800)  # (100 + 300) / (400 + 400)
    assert r1["win_rate"] == pytest.approx(3 / 6)
    assert pd.isna(r2["win_rate_value"])  # nothing closed
    assert pd.isna(r2["win_rate"])
    assert r3["win_rate_value"] == 0.0  # closed, nothing won
    assert r3["win_rate"] == 0.0


def test_trailing_win_rate_window_length_and_bad_kind() -> None:
    one = trailing_win_rate(MONTHLY, as_of=AS_OF, months=1)
    assert list(one["rep_id"]) == [1]
    assert one.iloc[0]["win_rate_value"] == pytest.approx(300 / 400)
    with pytest.raises(ValueError, match="monthly"):
        trailing_win_rate(MONTHLY.assign(period="2026-Q1"), as_of=AS_OF)
