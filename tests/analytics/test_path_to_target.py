"""Tests for analytics.path_to_target, on small frames with hand-computed expectations.

The issue's example: a rep 38k short of a June target on 5 June 2026, at a 9.5k deal size, a
30% win rate, 0.8 closes per opportunity and a 41-day cycle, with 11 open deals due in June
worth 38k (21k weighted). 25 calendar days are left (6 to 30 June), 17 of them working days
(8-12, 15-19, 22-26, 29-30 June).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.drivers import DriverConfig, driver_table
from analytics.path_to_target import PATH_COLUMNS, path_to_target, pooled_rates
from analytics.periods import FiscalCalendar, period_index

AS_OF = date(2026, 6, 5)
CAL = FiscalCalendar()
JUNE = int(period_index(pd.Series([pd.Timestamp(AS_OF)]), "month", CAL)[0])


def gap_row(
    gap: float,
    *,
    metric: str = "won_revenue",
    subject: tuple[str, int] = ("rep", 1),
    period: str = "2026-06",
    end: str = "2026-06-30",
) -> dict[str, Any]:
    kind, sid = subject
    return {
        "subject_type": kind,
        "rep_id": sid if kind == "rep" else None,
        "team_id": sid if kind == "team" else None,
        "metric": metric,
        "period": period,
        "period_end": pd.Timestamp(end),
        "gap": gap,
    }


def rates(**overrides: float) -> pd.DataFrame:
    row = {
        "subject_type": "rep",
        "subject_id": 1,
        "deal_size": 9500.0,
        "win_rate": 0.3,
        "throughput": 0.8,
        "cycle_days": 41.0,
    }
    return pd.DataFrame([{**row, **overrides}])


def pipeline(
    *, amount: float = 38000.0, weighted: float = 21000.0, deals: int = 11, expected: float = 2.4
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "subject_type": "rep",
                "subject_id": 1,
                "period": "2026-06",
                "open_amount": amount,
                "weighted_amount": weighted,
                "open_deals": deals,
                "weighted_deals": expected,
            }
        ]
    )


def one(gap: dict[str, Any], r: pd.DataFrame, p: pd.DataFrame | None, **kw: Any) -> dict[str, Any]:
    out = path_to_target(pd.DataFrame([gap]), r, p, as_of=AS_OF, **kw)
    assert list(out.columns) == list(PATH_COLUMNS)
    record: dict[str, Any] = out.iloc[0].to_dict()
    return record


def test_the_issues_example():
    p = one(gap_row(38000.0), rates(), pipeline())
    assert p["wins_needed"] == 4  # ceil(38000 / 9500) = 4
    assert p["closes_needed"] == 14  # ceil(4 / 0.3 = 13.33)
    assert p["opportunities_needed"] == 17  # ceil(4 / (0.3 × 0.8) = 16.67)
    assert p["days_left"] == 25 and p["working_days_left"] == 17
    assert p["cycle_days"] == 41 and p["new_opportunities_can_close"] is False
    assert (p["open_deals"], p["open_amount"], p["weighted_pipeline"]) == (11, 38000, 21000)
    assert p["open_pipeline"] == 38000
    assert p["pipeline_covers"] is False
    # Nothing new can close in time, but winning enough of the open deals (38k ≥ 38k) would.
    assert p["reachable"] == "on_pipeline"
    assert p["path_to_target"] == (
        "38k short: needs 4 more wins from 11 open deals worth 38k (21k weighted); "
        "new opportunities won't close before 30 June at a 41-day cycle"
    )


def test_holidays_are_not_working_days():
    p = one(gap_row(38000.0), rates(), pipeline(), holidays=(date(2026, 6, 19),))
    assert p["working_days_left"] == 16 and p["days_left"] == 25


def test_out_of_reach_when_even_every_open_deal_falls_short_and_nothing_new_can_close():
    p = one(gap_row(38000.0), rates(), pipeline(amount=30000.0))
    assert p["reachable"] == "out_of_reach"
    assert p["path_to_target"].startswith("out of reach: 38k short: needs 4 more wins")


def test_on_pipeline_when_the_weighted_pipeline_covers_the_gap():
    p = one(gap_row(38000.0), rates(cycle_days=10.0), pipeline(amount=60000.0, weighted=38000.0))
    assert p["pipeline_covers"] is True and p["reachable"] == "on_pipeline"


def test_needs_new_pipeline_when_new_opportunities_can_still_close():
    # A cycle of exactly the days left still closes on the period's last day.
    p = one(gap_row(38000.0), rates(cycle_days=25.0), pipeline())
    assert p["new_opportunities_can_close"] is True
    assert p["reachable"] == "needs_new_pipeline"
    assert p["path_to_target"].endswith(
        "new opportunities can still close by 30 June at a 25-day cycle: about 17 "
        "opportunities (14 closes at a 30% win rate)"
    )
    # 25.2 days is longer than the 25 left: shown as 26 days, so the text agrees.
    p = one(gap_row(38000.0), rates(cycle_days=25.2), pipeline())
    assert p["new_opportunities_can_close"] is False
    assert p["path_to_target"].endswith("won't close before 30 June at a 26-day cycle")


def test_won_deals_counts_and_honest_rounding():
    # gap 2.4 deals (a prorated target): 3 wins. 3 / 0.3 is 10.000000000000002 in floats: 10
    # closes, not 11.
    p = one(gap_row(2.4, metric="won_deals"), rates(cycle_days=10.0), pipeline())
    assert p["wins_needed"] == 3 and p["closes_needed"] == 10
    assert p["opportunities_needed"] == 13  # ceil(3 / 0.24 = 12.5)
    assert p["open_pipeline"] == 11 and p["weighted_pipeline"] == 2.4
    assert p["pipeline_covers"] is True and p["reachable"] == "on_pipeline"
    assert p["path_to_target"].startswith(
        "needs 3 more wins from 11 open deals (2.4 wins expected)"
    )


def test_no_deal_size_leaves_the_counts_unknown_and_says_why():
    p = one(gap_row(38000.0), rates(deal_size=np.nan, win_rate=0.0), pipeline())
    assert math.isnan(p["wins_needed"]) and math.isnan(p["closes_needed"])
    assert math.isnan(p["opportunities_needed"])
    assert "wins needed unknown (no won deal in the 12 months to 2026-06)" in p["path_to_target"]
    # The pipeline and the cycle still decide whether it can be reached.
    assert p["reachable"] == "on_pipeline"


def test_zero_win_rate_leaves_closes_unknown():
    p = one(gap_row(3.0, metric="won_deals"), rates(win_rate=0.0, cycle_days=5.0), pipeline())
    assert p["wins_needed"] == 3
    assert math.isnan(p["closes_needed"]) and math.isnan(p["opportunities_needed"])
    assert p["path_to_target"].endswith(
        "at a 5-day cycle; closes needed unknown (no win among the deals closed in the 12 "
        "months to 2026-06)"
    )


def test_unknown_throughput_leaves_opportunities_unknown():
    p = one(gap_row(38000.0), rates(throughput=np.nan, cycle_days=5.0), pipeline())
    assert p["closes_needed"] == 14 and math.isnan(p["opportunities_needed"])
    assert p["path_to_target"].endswith(
        "opportunities needed unknown (no opportunity created in the 12 months to 2026-06)"
    )


def test_unknown_cycle():
    p = one(gap_row(38000.0), rates(cycle_days=np.nan), pipeline())
    assert p["new_opportunities_can_close"] is None
    assert p["reachable"] is None  # the pipeline falls short: it depends on the cycle
    assert p["path_to_target"].endswith(
        "; sales cycle unknown (no won deal in the 12 months to 2026-06)"
    )
    covered = one(gap_row(38000.0), rates(cycle_days=np.nan), pipeline(weighted=40000.0))
    assert covered["reachable"] == "on_pipeline"


def test_a_subject_without_rates_or_pipeline():
    p = one(gap_row(38000.0, subject=("rep", 2)), rates(), None)
    assert math.isnan(p["wins_needed"]) and math.isnan(p["cycle_days"])
    assert p["open_deals"] == 0 and p["weighted_pipeline"] == 0
    assert p["path_to_target"] == (
        "38k short: wins needed unknown (no won deal in the 12 months to 2026-06), with no "
        "open deal due by 30 June; sales cycle unknown (no won deal in the 12 months to 2026-06)"
    )


def test_team_rows_use_the_teams_rates_and_pipeline():
    team_rates = pd.concat(
        [rates(), rates(subject_type="team", deal_size=20000.0, cycle_days=60.0)]
    ).assign(subject_id=[1, 1])
    team_pipe = pipeline().assign(subject_type="team", open_amount=100000.0)
    gaps = pd.DataFrame([gap_row(38000.0), gap_row(50000.0, subject=("team", 1))])
    out = path_to_target(gaps, team_rates, pd.concat([pipeline(), team_pipe]), as_of=AS_OF)
    assert out["wins_needed"].tolist() == [4, 3]  # ceil(50000 / 20000)
    assert out["open_amount"].tolist() == [38000, 100000]
    assert out["cycle_days"].tolist() == [41, 60]


def test_rows_without_a_path():
    gaps = pd.DataFrame(
        [
            gap_row(38000.0, period="2026-05", end="2026-05-31"),  # ended
            gap_row(-500.0),  # target reached
            gap_row(np.nan),
            gap_row(5.0, metric="activities"),
            gap_row(38000.0),
        ],
        index=[10, 11, 12, 13, 14],
    )
    out = path_to_target(gaps, rates(), pipeline(), as_of=AS_OF)
    assert out.index.tolist() == [10, 11, 12, 13, 14]
    assert out["path_to_target"].tolist()[:4] == [None] * 4
    assert out["reachable"].tolist()[:4] == [None] * 4
    assert out["wins_needed"].isna().tolist() == [True, True, True, True, False]
    # The period's last day is still open.
    last_day = path_to_target(
        pd.DataFrame([gap_row(1.0)]), rates(), pipeline(), as_of=date(2026, 6, 30)
    )
    assert last_day["days_left"].tolist() == [0] and last_day["working_days_left"].tolist() == [0]


def test_duplicate_rates_are_an_error():
    with pytest.raises(ValueError, match="rates has more than one row"):
        path_to_target(
            pd.DataFrame([gap_row(1.0)]), pd.concat([rates(), rates()]), None, as_of=AS_OF
        )


def monthly_row(subject: tuple[str, int], index: int, **values: float) -> dict[str, Any]:
    base = {"won_revenue": 0.0, "won_deals": 0, "closed_deals": 0, "opportunities": 0}
    return {
        "subject_type": subject[0],
        "subject_id": subject[1],
        "period_index": index,
        "sales_cycle_days": np.nan,
        **base,
        **values,
    }


def test_pooled_rates_over_the_twelve_months_to_as_of():
    rows = [
        # 12 months back: outside the window.
        monthly_row(("rep", 1), JUNE - 12, won_revenue=1e6, won_deals=100, closed_deals=100),
        monthly_row(
            ("rep", 1),
            JUNE - 11,
            won_revenue=30000.0,
            won_deals=3,
            closed_deals=10,
            opportunities=12,
            sales_cycle_days=40.0,
        ),
        monthly_row(
            ("rep", 1),
            JUNE,
            won_revenue=10000.0,
            won_deals=1,
            closed_deals=2,
            opportunities=3,
            sales_cycle_days=60.0,
        ),
        monthly_row(("team", 1), JUNE, closed_deals=4, opportunities=2),
        monthly_row(("rep", 2), JUNE - 12, won_deals=1, closed_deals=1),
    ]
    out = pooled_rates(pd.DataFrame(rows), as_of=AS_OF, cal=CAL)
    assert out[["subject_type", "subject_id"]].values.tolist() == [["rep", 1], ["team", 1]]
    rep, team = out.iloc[0], out.iloc[1]
    assert rep["deal_size"] == 10000.0  # 40000 / 4
    assert rep["win_rate"] == 4 / 12 and rep["throughput"] == 12 / 15
    assert rep["cycle_days"] == 45.0  # (40 × 3 + 60 × 1) / 4
    assert math.isnan(team["deal_size"]) and team["win_rate"] == 0.0
    assert team["throughput"] == 2.0 and math.isnan(team["cycle_days"])


def test_pooled_rates_equal_the_drivers_month_values():
    """The rates a rep's path uses are the ones coaching shows for the month of as_of."""
    rng = np.random.default_rng(3)
    rows = []
    for rep in (1, 2):
        for i in range(JUNE - 15, JUNE + 1):
            won = int(rng.integers(0, 5))
            closed = won + int(rng.integers(0, 6))
            rows.append(
                {
                    "rep_id": rep,
                    "period": f"m{i}",
                    "period_index": i,
                    "won_revenue": won * float(rng.uniform(5000, 20000)),
                    "won_deals": won,
                    "closed_deals": closed,
                    "opportunities": closed + int(rng.integers(0, 4)),
                    "activities": 50,
                    "sales_cycle_days": float(rng.uniform(20, 60)) if won else np.nan,
                }
            )
    metrics = pd.DataFrame(rows)
    metrics["period"] = [f"{(i // 12)}-{i % 12 + 1:02d}" for i in metrics["period_index"]]
    reps = pd.DataFrame({"rep_id": [1, 2], "team_id": [7, 7], "role": ["rep", "rep"]})
    table = driver_table(metrics, reps, config=DriverConfig())
    table = table[table["period_index"] == JUNE].set_index("rep_id")
    ours = pooled_rates(
        metrics.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep"),
        as_of=AS_OF,
        cal=CAL,
    ).set_index("subject_id")
    for driver, column in [
        ("deal_size", "deal_size"),
        ("win_rate", "win_rate"),
        ("throughput", "throughput"),
        ("cycle", "cycle_days"),
    ]:
        np.testing.assert_allclose(
            ours.loc[[1, 2], column].to_numpy(dtype=float),
            table.loc[[1, 2], f"{driver}_value"].to_numpy(dtype=float),
            rtol=1e-12,
        )
