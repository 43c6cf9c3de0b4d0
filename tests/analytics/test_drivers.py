"""Tests for analytics.drivers.

Small frames carry hand-computed expectations (worked out in the comments); the acceptance
test at the end runs the whole chain on seeded demo data with planted weaknesses.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.drivers import (
    COMPARED_DRIVERS,
    DRIVER_TABLE_COLUMNS,
    DRIVERS,
    DriverConfig,
    driver_table,
)
from analytics.metrics import period_metrics
from analytics.periods import FiscalCalendar, period_of, shift
from app.demo.generator import DemoConfig, generate

# The hand-computed frames below were laid out around a 35% bar (A's activity is 33% below).
ONE = DriverConfig(window=1, min_deals=0, material_shortfall=0.35)


def row(
    rep: str,
    period: str,
    index: int,
    *,
    acts: int,
    opps: int,
    closed: int,
    won: int,
    revenue: float,
    cycle: float | None = 30.0,
) -> dict[str, Any]:
    return {
        "rep_id": rep,
        "period": period,
        "period_index": index,
        "won_revenue": revenue,
        "won_deals": won,
        "closed_deals": closed,
        "opportunities": opps,
        "activities": acts,
        "sales_cycle_days": np.nan if cycle is None else cycle,
    }


def reps_frame(*rows: tuple[str, str | None, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["rep_id", "team_id", "role"])


# Period 2026-01 (index 24312), team T:
#   rep  acts  opps closed won revenue | activity conv  thr  win  size
#   A    100   10   10     3   30,000  | 100      .10   1.0  .30  10,000
#   B    200   10   8      4   20,000  | 200      .05   0.8  .50   5,000
#   C    150   12   12     3   60,000  | 150      .08   1.0  .25  20,000
#   D    120   6    6      3   36,000  | 120      .05   1.0  .50  12,000
#   M (manager) with huge numbers that must never move a median.
JAN = [
    row("A", "2026-01", 24312, acts=100, opps=10, closed=10, won=3, revenue=30_000),
    row("B", "2026-01", 24312, acts=200, opps=10, closed=8, won=4, revenue=20_000),
    row("C", "2026-01", 24312, acts=150, opps=12, closed=12, won=3, revenue=60_000),
    row("D", "2026-01", 24312, acts=120, opps=6, closed=6, won=3, revenue=36_000),
    row("M", "2026-01", 24312, acts=1000, opps=100, closed=100, won=90, revenue=1e6),
]
TEAM = reps_frame(
    ("A", "T", "rep"),
    ("B", "T", "rep"),
    ("C", "T", "rep"),
    ("D", "T", "rep"),
    ("M", "T", "manager"),
)


def by_rep(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(r["rep_id"]): r for _, r in table.iterrows()}


def test_columns_and_one_row_per_rep_period() -> None:
    table = driver_table(pd.DataFrame(JAN), TEAM, config=ONE)
    assert tuple(table.columns) == DRIVER_TABLE_COLUMNS
    assert list(table["rep_id"]) == ["A", "B", "C", "D", "M"]
    for d in DRIVERS:
        assert f"{d}_contribution" in table
    assert "cycle_contribution" not in table


def test_team_medians_leave_the_rep_and_managers_out() -> None:
    r = by_rep(driver_table(pd.DataFrame(JAN), TEAM, config=ONE))
    a = r["A"]
    # Peers of A are B, C, D: medians of (200,150,120), (.05,.08,.05), (.8,1,1), (.5,.25,.5),
    # (5000,20000,12000).
    assert a["team_peers"] == 3
    assert a["activity_team_median"] == pytest.approx(150)
    assert a["conversion_team_median"] == pytest.approx(0.05)
    assert a["throughput_team_median"] == pytest.approx(1.0)
    assert a["win_rate_team_median"] == pytest.approx(0.5)
    assert a["deal_size_team_median"] == pytest.approx(12_000)
    # The manager is compared with all four reps (even count: mean of the middle two):
    # activity 100,120,150,200 -> 135.
    m = r["M"]
    assert m["team_peers"] == 4
    assert m["activity_team_median"] == pytest.approx(135)


def test_contributions_add_up_to_the_revenue_gap() -> None:
    table = driver_table(pd.DataFrame(JAN), TEAM, config=ONE)
    a = by_rep(table)["A"]
    # reference = 150 x .05 x 1 x .5 x 12000 = 45,000; A's revenue 30,000.
    assert a["reference_revenue"] == pytest.approx(45_000)
    assert a["revenue"] == pytest.approx(30_000)
    assert a["revenue_log_ratio"] == pytest.approx(math.log(30_000 / 45_000))
    assert a["activity_contribution"] == pytest.approx(math.log(100 / 150))
    assert a["conversion_contribution"] == pytest.approx(math.log(2.0))
    assert a["throughput_contribution"] == pytest.approx(0.0)
    assert a["win_rate_contribution"] == pytest.approx(math.log(0.6))
    assert a["deal_size_contribution"] == pytest.approx(math.log(10_000 / 12_000))
    # The identity holds for every row, not only A.
    total = table[[f"{d}_contribution" for d in DRIVERS]].sum(axis=1)
    np.testing.assert_allclose(total, table["revenue_log_ratio"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        np.exp(table["revenue_log_ratio"]), table["revenue"] / table["reference_revenue"]
    )


def test_focus_is_the_weakest_driver_below_the_threshold() -> None:
    r = by_rep(driver_table(pd.DataFrame(JAN), TEAM, config=ONE))
    # A: activity .667 (33% below: not enough), win rate .3/.5 = .6 (40% below): win rate.
    assert r["A"]["coaching_focus"] == "win_rate"
    assert r["A"]["focus_driver"] == "win_rate"
    assert r["A"]["focus_value"] == pytest.approx(0.3)
    assert r["A"]["focus_team_median"] == pytest.approx(0.5)
    assert r["A"]["focus_vs_team"] == pytest.approx(0.6)
    assert r["A"]["focus_reason"] == "win rate 30% vs team median 50% (40% below) in 2026-01"
    # B (peers A, C, D): conversion .05/.08 = .625, deal size 5000/12000 = .417: deal size.
    assert r["B"]["coaching_focus"] == "deal_size"
    assert r["B"]["focus_reason"] == (
        "average deal size 5,000 vs team median 12,000 (58% below) in 2026-01"
    )
    # C (peers A, B, D): size 20000 vs 12000, win .25 vs .5 = .5 -> win rate.
    assert r["C"]["coaching_focus"] == "win_rate"


def test_conversion_is_coached_as_opportunities() -> None:
    rows = [
        row("A", "2026-01", 24312, acts=200, opps=4, closed=10, won=3, revenue=30_000),
        row("B", "2026-01", 24312, acts=200, opps=10, closed=10, won=3, revenue=30_000),
        row("C", "2026-01", 24312, acts=200, opps=10, closed=10, won=3, revenue=30_000),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("C", "T", "rep"))
    a = by_rep(driver_table(pd.DataFrame(rows), reps, config=ONE))["A"]
    # .02 vs .05: 60% below.
    assert a["coaching_focus"] == "opportunities"
    assert a["focus_driver"] == "conversion"
    assert a["focus_reason"] == (
        "opportunities per activity 2.0% vs team median 5.0% (60% below) in 2026-01"
    )


def test_slow_cycle_and_stalled_deals_are_coached_as_cycle() -> None:
    rows = [
        row("A", "2026-01", 24312, acts=100, opps=10, closed=10, won=3, revenue=3e4, cycle=90),
        row("B", "2026-01", 24312, acts=100, opps=10, closed=4, won=2, revenue=2e4),
        row("C", "2026-01", 24312, acts=100, opps=10, closed=10, won=3, revenue=3e4),
        row("D", "2026-01", 24312, acts=100, opps=10, closed=10, won=3, revenue=3e4),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("C", "T", "rep"), ("D", "T", "rep"))
    r = by_rep(driver_table(pd.DataFrame(rows), reps, config=ONE))
    # A: 90 days vs median 30 -> 3x (200% longer); lower is better so the ratio is inverted.
    assert r["A"]["coaching_focus"] == "cycle"
    assert r["A"]["focus_driver"] == "cycle"
    assert r["A"]["cycle_vs_team"] == pytest.approx(3.0)
    assert (
        r["A"]["focus_reason"]
        == "sales cycle 90 days vs team median 30 days (200% longer) in 2026-01"
    )
    # B closes 4 of 10 opportunities vs 1.0 for the peers: deals stall, coached as cycle.
    # (Win rate .5 vs .3 is above the team.)
    assert r["B"]["coaching_focus"] == "cycle"
    assert r["B"]["focus_driver"] == "throughput"
    assert r["B"]["focus_reason"] == (
        "closed deals per opportunity 0.40 vs team median 1.00 (60% below) in 2026-01"
    )


def test_no_focus_at_team_level_and_without_peers() -> None:
    rows = [
        row("A", "2026-01", 24312, acts=100, opps=10, closed=10, won=3, revenue=3e4),
        row("B", "2026-01", 24312, acts=110, opps=10, closed=10, won=3, revenue=3e4),
        row("C", "2026-01", 24312, acts=90, opps=10, closed=10, won=3, revenue=3e4),
        row("S", "2026-01", 24312, acts=10, opps=1, closed=1, won=0, revenue=0),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("C", "T", "rep"), ("S", "U", "rep"))
    r = by_rep(driver_table(pd.DataFrame(rows), reps, config=ONE))
    assert r["A"]["coaching_focus"] is None
    assert r["A"]["focus_driver"] is None
    assert np.isnan(r["A"]["focus_value"])
    assert r["A"]["focus_reason"] == "no driver 35% or more below the team median in 2026-01"
    assert r["S"]["team_peers"] == 0
    assert r["S"]["coaching_focus"] is None
    assert np.isnan(r["S"]["activity_team_median"])
    assert r["S"]["focus_reason"] == "no team peers to compare with in 2026-01"


def test_reps_without_any_team_or_not_in_reps() -> None:
    frame = pd.DataFrame(JAN[:2])
    table = driver_table(frame, reps_frame(("A", None, "rep")), config=ONE)
    assert list(table["team_peers"]) == [0, 0]  # A has no team, B is not in reps at all
    assert table["coaching_focus"].isna().all()
    assert table["activity_value"].tolist() == [100.0, 200.0]


def test_too_little_evidence_is_not_judged() -> None:
    # Default min_deals=10: A's expected wins at the team rate are 10 closed x .5 = 5 < 10, so
    # the 40% win-rate shortfall is not judged; activity (33% below) is not material.
    table = driver_table(
        pd.DataFrame(JAN), TEAM, config=DriverConfig(window=1, material_shortfall=0.35)
    )
    a = by_rep(table)["A"]
    assert a["coaching_focus"] is None
    assert a["win_rate_vs_team"] == pytest.approx(0.6)  # still reported
    lenient = driver_table(pd.DataFrame(JAN), TEAM, config=DriverConfig(window=1, min_deals=5))
    assert by_rep(lenient)["A"]["coaching_focus"] == "win_rate"


def test_zero_wins_give_nan_logs_not_infinities() -> None:
    rows = [
        row("A", "2026-01", 24312, acts=100, opps=20, closed=20, won=0, revenue=0, cycle=None),
        row("B", "2026-01", 24312, acts=100, opps=20, closed=20, won=6, revenue=6e4),
        row("C", "2026-01", 24312, acts=100, opps=20, closed=20, won=6, revenue=6e4),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("C", "T", "rep"))
    table = driver_table(pd.DataFrame(rows), reps, config=DriverConfig(window=1))
    a = by_rep(table)["A"]
    numeric = table.select_dtypes("number").to_numpy(dtype="float64")
    assert not np.isinf(numeric).any()
    assert a["win_rate_value"] == 0.0
    assert np.isnan(a["win_rate_contribution"])
    assert np.isnan(a["deal_size_value"])
    assert np.isnan(a["revenue_log_ratio"])
    # 20 closed x .3 = 6 expected wins < 10: not judged by default...
    assert a["coaching_focus"] is None
    # ...but with enough evidence a rep who wins nothing is 100% below.
    loose = by_rep(driver_table(pd.DataFrame(rows), reps, config=ONE))["A"]
    assert loose["coaching_focus"] == "win_rate"
    assert loose["focus_reason"] == "win rate 0% vs team median 30% (100% below) in 2026-01"


def test_window_pools_the_preceding_periods_and_trailing_precedes_the_window() -> None:
    # X has rows in 2025-01, -02, -04, -05 (none in -03). window=2, trailing=2.
    rows = [
        row("X", "2025-01", 24300, acts=30, opps=1, closed=1, won=1, revenue=100, cycle=10),
        row("X", "2025-02", 24301, acts=20, opps=2, closed=4, won=1, revenue=200, cycle=10),
        row("X", "2025-04", 24303, acts=30, opps=3, closed=4, won=1, revenue=300, cycle=20),
        row("X", "2025-05", 24304, acts=50, opps=5, closed=6, won=3, revenue=900, cycle=50),
    ]
    cfg = DriverConfig(window=2, trailing_periods=2, min_deals=0)
    r = driver_table(pd.DataFrame(rows), reps_frame(("X", "T", "rep")), config=cfg)
    may = r[r["period"] == "2025-05"].iloc[0]
    # Window 2025-04..05: acts 80 over 2 periods, opps 8, closed 10, won 4, revenue 1200.
    assert may["window_start"] == "2025-04"
    assert may["window_periods"] == 2
    assert may["activity_value"] == pytest.approx(40)
    assert may["conversion_value"] == pytest.approx(8 / 80)
    assert may["throughput_value"] == pytest.approx(10 / 8)
    assert may["win_rate_value"] == pytest.approx(4 / 10)
    assert may["deal_size_value"] == pytest.approx(1200 / 4)
    assert may["revenue"] == pytest.approx(600)
    # Won-weighted cycle: (20 x 1 + 50 x 3) / 4 = 42.5.
    assert may["cycle_value"] == pytest.approx(42.5)
    # Trailing 2025-02..03 lacks 2025-03: a baseline of half its periods is no baseline.
    assert np.isnan(may["activity_trailing"])
    assert np.isnan(may["win_rate_vs_trailing"])
    assert np.isnan(may["revenue_trailing"])
    apr = r[r["period"] == "2025-04"].iloc[0]
    # Window 2025-03..04 holds only the 2025-04 row; trailing 2025-01..02 holds two.
    assert apr["window_start"] == "2025-03"
    assert apr["window_periods"] == 1
    assert apr["activity_value"] == pytest.approx(30)
    # Trailing 2025-01..02, both there: activity 25 per period, win rate 2/5.
    assert apr["activity_trailing"] == pytest.approx(25)
    assert apr["win_rate_trailing"] == pytest.approx(0.4)
    assert apr["revenue_vs_trailing"] == pytest.approx(300 / 150)
    jan = r[r["period"] == "2025-01"].iloc[0]
    assert np.isnan(jan["activity_trailing"])


def test_a_baseline_in_the_warm_up_months_is_null() -> None:
    # A CRM's first months hold a few records: 2 opportunities in 2025-01 against about 20 a
    # month later. A baseline there would read as a 10x rise; it must be null instead.
    rows = [
        row("X", "2025-01", 24300, acts=0, opps=2, closed=1, won=1, revenue=100),
        *(
            row("X", f"2025-{m:02d}", 24299 + m, acts=0, opps=20, closed=10, won=3, revenue=900)
            for m in range(2, 7)
        ),
    ]
    cfg = DriverConfig(window=2, trailing_periods=1, min_deals=0)
    r = driver_table(pd.DataFrame(rows), reps_frame(("X", "T", "rep")), config=cfg)
    by_period = r.set_index("period")
    # 2025-03: trailing 2025-01 (warm-up: 3 records vs a median of 30) -> null.
    assert np.isnan(by_period.loc["2025-03", "pipeline_trailing"])
    assert np.isnan(by_period.loc["2025-03", "revenue_vs_trailing"])
    # 2025-04: trailing 2025-02 is past the warm-up.
    assert by_period.loc["2025-04", "pipeline_trailing"] == pytest.approx(20)
    assert by_period.loc["2025-04", "pipeline_vs_trailing"] == pytest.approx(1.0)


def test_windows_do_not_leak_between_reps() -> None:
    rows = [
        row("A", "2025-01", 24300, acts=10, opps=1, closed=1, won=1, revenue=100),
        row("B", "2025-02", 24301, acts=30, opps=1, closed=1, won=1, revenue=100),
    ]
    cfg = DriverConfig(window=3, min_deals=0)
    table = driver_table(
        pd.DataFrame(rows), reps_frame(("A", "T", "rep"), ("B", "T", "rep")), config=cfg
    )
    b = table[table["rep_id"] == "B"].iloc[0]
    assert b["window_periods"] == 1
    assert b["activity_value"] == pytest.approx(30)


def test_short_tenure_peers_do_not_set_the_bar() -> None:
    # window 4 -> min_peer_periods 2. N has one period only: not a peer of A.
    rows = [
        row("A", "2025-03", 24302, acts=100, opps=10, closed=10, won=3, revenue=3e4),
        row("A", "2025-04", 24303, acts=100, opps=10, closed=10, won=3, revenue=3e4),
        row("B", "2025-03", 24302, acts=200, opps=10, closed=10, won=3, revenue=3e4),
        row("B", "2025-04", 24303, acts=200, opps=10, closed=10, won=3, revenue=3e4),
        row("N", "2025-04", 24303, acts=1, opps=1, closed=1, won=1, revenue=1),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("N", "T", "rep"))
    table = driver_table(pd.DataFrame(rows), reps, config=DriverConfig(window=4))
    a = table[(table["rep_id"] == "A") & (table["period"] == "2025-04")].iloc[0]
    assert a["team_peers"] == 1
    assert a["activity_team_median"] == pytest.approx(200)
    n = table[table["rep_id"] == "N"].iloc[0]
    # N itself is still compared with the eligible peers A and B: activity median 150.
    assert n["activity_team_median"] == pytest.approx(150)


def test_young_history_still_gets_a_reference() -> None:
    # window 12 -> min_peer_periods 6, but nobody in the team has more than one period yet.
    rows = [
        row("A", "2026-01", 24312, acts=50, opps=10, closed=10, won=3, revenue=3e4),
        row("B", "2026-01", 24312, acts=200, opps=10, closed=10, won=3, revenue=3e4),
        row("C", "2026-01", 24312, acts=150, opps=10, closed=10, won=3, revenue=3e4),
    ]
    reps = reps_frame(("A", "T", "rep"), ("B", "T", "rep"), ("C", "T", "rep"))
    a = by_rep(driver_table(pd.DataFrame(rows), reps))["A"]
    assert a["team_peers"] == 2
    assert a["activity_team_median"] == pytest.approx(175)
    # 50 per month vs 175: 71% below.
    assert a["coaching_focus"] == "activity"
    assert a["focus_reason"] == (
        "activities per month 50 vs team median 175 (71% below) over the 12 months to 2026-01"
    )


def test_default_window_is_a_year_of_the_frame_kind() -> None:
    rows = [
        row("A", "2026-Q2", 8105, acts=100, opps=10, closed=10, won=3, revenue=3e4),
        row("A", "2025-Q2", 8101, acts=500, opps=10, closed=10, won=3, revenue=3e4),
    ]
    table = driver_table(
        pd.DataFrame(rows), reps_frame(("A", "T", "rep")), config=DriverConfig(trailing_periods=1)
    )
    q = table[table["period"] == "2026-Q2"].iloc[0]
    # 4 quarters: 2025-Q3..2026-Q2, so 2025-Q2 is the first trailing quarter, not in the window.
    assert q["window_start"] == "2025-Q3"
    assert q["window_periods"] == 1
    assert q["activity_trailing"] == pytest.approx(500)
    assert q["focus_reason"] == "no team peers to compare with over the 4 quarters to 2026-Q2"


def test_bad_inputs_are_rejected() -> None:
    frame = pd.DataFrame(JAN)
    with pytest.raises(ValueError, match="missing columns"):
        driver_table(frame.drop(columns=["activities"]), TEAM)
    with pytest.raises(ValueError, match="more than one row"):
        driver_table(frame, pd.concat([TEAM, TEAM]))
    mixed = pd.concat(
        [
            frame,
            pd.DataFrame([row("A", "2026-Q1", 8104, acts=1, opps=1, closed=1, won=1, revenue=1)]),
        ]
    )
    with pytest.raises(ValueError, match="one period kind"):
        driver_table(mixed, TEAM)
    with pytest.raises(ValueError):
        DriverConfig(material_shortfall=1.5)


def test_empty_metrics_give_an_empty_table() -> None:
    table = driver_table(pd.DataFrame(JAN).iloc[:0], TEAM)
    assert table.empty
    assert tuple(table.columns) == DRIVER_TABLE_COLUMNS


# ---------------------------------------------------------------------- acceptance

RATES = {"USD": 1.0, "EUR": 1 / 0.92, "GBP": 1 / 0.79, "CAD": 1 / 1.37, "AUD": 1 / 1.53}
SEEDS = range(20)
TODAY = date(2026, 5, 20)  # pinned so the test does not change with the calendar


def _hit_rates(kind: str) -> pd.DataFrame:
    """Per seed: planted weaknesses named, and healthy reps left alone, in the latest complete
    quarter (monthly frames: its last month, whose 12-month window ends there)."""
    cal = FiscalCalendar()
    quarter = shift(period_of(TODAY, "quarter", cal), -1, cal)
    label = quarter.label if kind == "quarter" else period_of(quarter.end, "month", cal).label
    out = []
    for seed in SEEDS:
        data = generate(DemoConfig(seed=seed, today=TODAY))
        deals = data.deals.rename(columns={"owner_key": "rep_id"})
        acts = data.activities.rename(columns={"owner_key": "rep_id"}).assign(is_deleted=False)
        reps = data.reps.rename(columns={"rep_key": "rep_id", "team_key": "team_id"})
        metrics = period_metrics(deals, acts, kind=kind, cal=cal, rates=RATES)
        table = driver_table(metrics, reps)
        latest = table[table["period"] == label].merge(reps, on="rep_id")
        latest = latest[latest["role"] == "rep"]
        ramping = pd.to_datetime(latest["start_date"]) > pd.Timestamp(TODAY) - pd.DateOffset(
            months=6
        )
        # A rep who left inside the window needs no coaching (and a partial last period
        # reads as a collapse of activity).
        left = latest["end_date"].notna()
        latest = latest[~ramping & ~left]
        weak = latest[latest["planted_weakness"].notna()]
        healthy = latest[latest["planted_weakness"].isna()]
        out.append(
            {
                "seed": seed,
                "weak_named": int((weak["coaching_focus"] == weak["planted_weakness"]).sum()),
                "weak": len(weak),
                "healthy_clear": int(healthy["coaching_focus"].isna().sum()),
                "healthy": len(healthy),
            }
        )
    return pd.DataFrame(out)


@pytest.mark.parametrize("kind", ["month", "quarter"])
def test_demo_planted_weaknesses_are_found(kind: str) -> None:
    rates = _hit_rates(kind)
    print(f"\n{kind}:\n{rates.to_string(index=False)}")
    assert (rates["weak"] >= 6).all() and (rates["healthy"] >= 10).all()  # the check has teeth
    weak_rate = rates["weak_named"].sum() / rates["weak"].sum()
    healthy_rate = rates["healthy_clear"].sum() / rates["healthy"].sum()
    assert weak_rate >= 0.95, rates
    assert healthy_rate >= 0.95, rates
    # No seed may fall apart: at most two misses each way in any one seed.
    assert (rates["weak"] - rates["weak_named"]).max() <= 2, rates
    assert (rates["healthy"] - rates["healthy_clear"]).max() <= 2, rates


def test_every_compared_driver_has_its_columns() -> None:
    for d in COMPARED_DRIVERS:
        for suffix in ("value", "team_median", "vs_team", "trailing", "vs_trailing"):
            assert f"{d}_{suffix}" in DRIVER_TABLE_COLUMNS


def test_rows_of_some_periods_are_the_full_tables_rows() -> None:
    data = generate(DemoConfig(seed=SEEDS[0], today=TODAY))
    deals = data.deals.rename(columns={"owner_key": "rep_id"})
    acts = data.activities.rename(columns={"owner_key": "rep_id"}).assign(is_deleted=False)
    reps = data.reps.rename(columns={"rep_key": "rep_id", "team_key": "team_id"})
    metrics = period_metrics(deals, acts, kind="month", cal=FiscalCalendar(), rates=RATES)
    full = driver_table(metrics, reps)
    wanted = sorted(set(full["period"]))[-3:]
    some = driver_table(metrics, reps, periods=wanted)
    assert set(some["period"]) == set(wanted) and some["focus_reason"].notna().any()
    expected = full[full["period"].isin(wanted)].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, expected)


# ------------------------------------------------------------- pipeline generation

# 2026-01 without activities (an opportunities-only export), team T:
#   rep  opps closed won revenue | pipeline thr  win  size
#   A    5    5      2   20,000  | 5        1.0  .4   10,000
#   B    10   10     4   40,000  | 10       1.0  .4   10,000
#   C    12   12     5   50,000  | 12       1.0  .42  10,000
#   D    11   11     4   40,000  | 11       1.0  .36  10,000
NO_ACTS = [
    row("A", "2026-01", 24312, acts=0, opps=5, closed=5, won=2, revenue=20_000),
    row("B", "2026-01", 24312, acts=0, opps=10, closed=10, won=4, revenue=40_000),
    row("C", "2026-01", 24312, acts=0, opps=12, closed=12, won=5, revenue=50_000),
    row("D", "2026-01", 24312, acts=0, opps=11, closed=11, won=4, revenue=40_000),
]


def test_without_activities_pipeline_is_the_first_driver_and_the_focus() -> None:
    r = by_rep(driver_table(pd.DataFrame(NO_ACTS), TEAM, config=ONE))
    a = r["A"]
    assert a["identity"] == "pipeline"
    assert np.isnan(a["activity_value"]) and np.isnan(a["conversion_value"])
    assert not a["activity_judged"] and not a["conversion_judged"]
    # Pipeline 5 vs median of B, C, D (11): 55% below -> "pipeline" (create more opps).
    assert a["pipeline_team_median"] == pytest.approx(11)
    assert a["pipeline_judged"]
    assert a["coaching_focus"] == "pipeline"
    assert a["focus_reason"] == (
        "opportunities created per month 5.0 vs team median 11.0 (55% below) in 2026-01"
    )
    # revenue = pipeline x throughput x win rate x deal size, exactly.
    parts = [a[f"{d}_contribution"] for d in ("pipeline", "throughput", "win_rate", "deal_size")]
    assert sum(parts) == pytest.approx(a["revenue_log_ratio"])
    assert np.isnan(a["activity_contribution"])


def test_with_activities_pipeline_is_reported_not_judged() -> None:
    r = by_rep(driver_table(pd.DataFrame(JAN), TEAM, config=ONE))
    b = r["B"]
    assert b["identity"] == "activity"
    assert b["pipeline_value"] == pytest.approx(10)
    assert not b["pipeline_judged"] and np.isnan(b["pipeline_contribution"])
    assert b["activity_judged"]


def test_a_source_without_activities_is_never_held_to_the_activity_bar() -> None:
    # B and C come from a CRM that syncs activities, A and D from a CSV export without them.
    rows = [
        row("A", "2026-01", 24312, acts=0, opps=10, closed=10, won=4, revenue=40_000),
        row("B", "2026-01", 24312, acts=200, opps=10, closed=10, won=4, revenue=40_000),
        row("C", "2026-01", 24312, acts=220, opps=11, closed=11, won=4, revenue=40_000),
        row("D", "2026-01", 24312, acts=0, opps=11, closed=11, won=4, revenue=40_000),
    ]
    reps = TEAM.iloc[:4].assign(tracks_activities=[False, True, True, False])
    r = by_rep(driver_table(pd.DataFrame(rows), reps, config=ONE))
    for rep in ("A", "D"):
        assert r[rep]["identity"] == "pipeline"
        assert r[rep]["coaching_focus"] is None
        assert np.isnan(r[rep]["activity_vs_team"])
    # The tracked reps' activity bar is set by tracked reps only (C's 220 for B, not 0).
    assert r["B"]["activity_team_median"] == pytest.approx(220)
    assert r["B"]["identity"] == "activity"


def test_a_recent_collapse_is_named_with_its_window() -> None:
    # Four reps at 20 opportunities, 10 closed, 3 won a month for a year; in the last three
    # months A wins nothing (expected 9 at A's earlier rate: far beyond noise).
    rows = []
    for rep in "ABCD":
        for m in range(12):
            collapsed = rep == "A" and m >= 9
            rows.append(
                row(
                    rep,
                    f"2025-{m + 1:02d}",
                    24300 + m,
                    acts=200,
                    opps=20,
                    closed=10,
                    won=0 if collapsed else 3,
                    revenue=0 if collapsed else 30_000,
                )
            )
    table = driver_table(pd.DataFrame(rows), TEAM.iloc[:4], periods=["2025-12"])
    a = by_rep(table)["A"]
    # Over the year A's win rate is 27/120 vs 36/120 for the team (25% below): no finding.
    assert a["win_rate_vs_team"] == pytest.approx(0.75)
    assert a["focus_window"] == "recent"
    assert a["coaching_focus"] == "win_rate"
    assert a["win_rate_recent_value"] == 0 and a["win_rate_recent_vs_own"] == 0
    assert a["recent_window_start"] == "2025-10"
    assert a["focus_reason"] == (
        "win rate 0% vs 30% in the 9 months before (100% below own level; team median 30%)"
        " over the 3 months to 2025-12"
    )
    assert all(r["coaching_focus"] is None for k, r in by_rep(table).items() if k != "A")
