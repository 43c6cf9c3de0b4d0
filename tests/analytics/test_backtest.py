"""Tests for analytics.backtest on small hand-built frames.

Every expected number is worked out by hand in the comments next to it.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics.backtest import (
    MID_COLUMNS,
    BacktestConfig,
    backtest,
    chosen_methods,
    error_summary,
    midpoint_figures,
    rollup_months,
)
from analytics.periods import FiscalCalendar, period_index

CAL = FiscalCalendar()
RATES = {"USD": 1.0, "EUR": 1.2}


def month(label: str) -> int:
    return int(period_index(pd.Series([pd.Timestamp(f"{label}-01")]), "month", CAL)[0])


def deals(rows: list[tuple[int, float, str, str, str, str, bool]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "rep_id",
            "amount",
            "currency",
            "status",
            "created_at",
            "close_date",
            "is_deleted",
        ],
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    return frame


def test_midpoint_figures_by_hand():
    # April 2026 has 30 days: 15 elapsed at the midpoint, the first day not elapsed is Apr 16;
    # March's midpoint is Mar 16.
    frame = deals(
        [
            (1, 100, "USD", "won", "2026-03-01", "2026-04-10", False),  # won_mid, early
            (1, 200, "EUR", "won", "2026-04-05", "2026-04-20", False),  # open_mid (240)
            (1, 50, "USD", "open", "2026-04-20", "2026-04-30", False),  # created after: none
            (1, 300, "USD", "lost", "2026-02-01", "2026-04-16", False),  # open_mid, early
            (1, 999, "USD", "won", "2026-03-01", "2026-04-01", True),  # deleted: none
            (1, 10, "USD", "won", "2026-04-15", "2026-04-15", False),  # won_mid
        ]
    )
    out = midpoint_figures(frame, cal=CAL, rates=RATES)
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["rep_id"], row["period_index"]) == (1, month("2026-04"))
    assert row["won_mid_value"] == pytest.approx(110.0)  # 100 + 10
    assert row["won_mid_deals"] == 2
    assert row["open_mid_value"] == pytest.approx(540.0)  # 240 + 300
    assert row["open_mid_deals"] == 2
    assert row["early_value"] == pytest.approx(400.0)  # 100 + 300
    assert row["early_deals"] == 2


def test_midpoint_figures_read_created_at_in_the_reporting_timezone():
    # 02:00 UTC on Apr 16 is 22:00 on Apr 15 in New York: before the midpoint there only.
    frame = deals([(2, 70, "USD", "open", "2026-04-16T02:00:00", "2026-04-25", False)])
    utc = midpoint_figures(frame, cal=CAL, rates=RATES, tz="UTC")
    ny = midpoint_figures(frame, cal=CAL, rates=RATES, tz="America/New_York")
    assert utc.empty
    assert ny["open_mid_value"].tolist() == [70.0]


def test_midpoint_figures_of_no_deals():
    out = midpoint_figures(deals([]), cal=CAL, rates=RATES)
    assert out.empty
    assert list(out.columns) == ["rep_id", "period_index", *MID_COLUMNS]


def monthly(rows: list[dict[str, float | int | str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).fillna(0)
    frame["period_index"] = [month(str(p)) for p in frame.pop("month")]
    return frame


def test_month_projection_by_hand():
    # as_of in May 2026: the one ended month asked for is April (30 days, half elapsed).
    frame = monthly(
        [
            # The 12 months before April: won 300 of 600 closed (0.5), 1 of 4 deals (0.25).
            {"rep_id": 1, "month": "2026-01", "won_revenue": 300, "closed_value": 600,
             "won_deals": 1, "closed_deals": 4},
            {"rep_id": 1, "month": "2026-04", "won_revenue": 400, "closed_value": 500,
             "won_deals": 3, "closed_deals": 4, "won_mid_value": 110, "won_mid_deals": 2,
             "open_mid_value": 540, "open_mid_deals": 2},
        ]
    )  # fmt: skip
    out = backtest(frame, BacktestConfig(as_of=date(2026, 5, 10), months=1, quarters=0))
    by = out.set_index("metric")
    assert set(out["period_kind"]) == {"month"}
    assert out["period_index"].tolist() == [month("2026-04")] * 2
    revenue = by.loc["won_revenue"]
    assert revenue["actual"] == 400
    assert revenue["run_rate"] == pytest.approx(220.0)  # 110 / (15 / 30)
    assert revenue["pipeline"] == pytest.approx(380.0)  # 110 + 540 × 0.5
    deals_row = by.loc["won_deals"]
    assert deals_row["run_rate"] == pytest.approx(4.0)  # 2 / 0.5
    assert deals_row["pipeline"] == pytest.approx(2.5)  # 2 + 2 × 0.25


def test_quarter_projection_by_hand():
    # as_of in July 2026: the ended quarter is Q2 (Apr 30 + May 31 + Jun 30 = 91 days),
    # projected at May's midpoint: 30 + 15 days elapsed.
    frame = monthly(
        [
            {"rep_id": 1, "month": "2026-01", "won_revenue": 100, "closed_value": 400},
            {"rep_id": 1, "month": "2026-04", "won_revenue": 100, "closed_value": 100},
            {"rep_id": 1, "month": "2026-05", "won_revenue": 80, "closed_value": 80,
             "won_mid_value": 50, "open_mid_value": 200},
            {"rep_id": 1, "month": "2026-06", "won_revenue": 120, "closed_value": 120,
             "early_value": 100},
        ]
    )  # fmt: skip
    out = backtest(frame, BacktestConfig(as_of=date(2026, 7, 5), months=0, quarters=1))
    row = out[out["metric"] == "won_revenue"].iloc[0]
    assert row["period_kind"] == "quarter"
    assert row["actual"] == 300  # 100 + 80 + 120
    # W = 100 (April whole) + 50 (May to its midpoint); the win rate of the 12 months before
    # May: (100 + 100) / (400 + 100) = 0.4.
    assert row["run_rate"] == pytest.approx(150 * 91 / 45)
    assert row["pipeline"] == pytest.approx(150 + (200 + 100) * 0.4)


def test_pipeline_without_a_win_rate():
    # Nothing closed in the 12 months before: open deals cannot be weighted (undefined); with
    # no open deal the pipeline projection is what was won.
    frame = monthly(
        [
            {"rep_id": 1, "month": "2026-04", "won_revenue": 10, "won_mid_value": 5,
             "open_mid_value": 100},
            {"rep_id": 2, "month": "2026-04", "won_revenue": 10, "won_mid_value": 5},
        ]
    )  # fmt: skip
    out = backtest(frame, BacktestConfig(as_of=date(2026, 5, 1), months=1, quarters=0))
    revenue = out[out["metric"] == "won_revenue"].set_index("rep_id")
    assert np.isnan(revenue.loc[1, "pipeline"])
    assert revenue.loc[2, "pipeline"] == 5


def projections(rows: list[tuple[int, float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["rep_id", "actual", "run_rate", "pipeline"])
    return frame.assign(period_kind="month", metric="won_revenue", period_index=0)


def test_error_summary_by_hand():
    out = error_summary(
        projections(
            [
                # rep 1: run rate errs +0.2, −0.25, +0.3; pipeline −0.1, +0.05, 0.
                (1, 100, 120, 90),
                (1, 200, 150, 210),
                (1, 0, 50, 10),  # actual 0: left out
                (1, 100, 130, 100),
                # rep 2: two periods only
                (2, 100, 100, 100),
                (2, 100, 100, 100),
                # rep 3: pipeline undefined once, so it has 2 periods, the run rate 3
                (3, 100, 150, 100),
                (3, 100, 150, np.nan),
                (3, 100, 150, 100),
                # rep 4: no period with an actual
                (4, 0, 10, 10),
            ]
        )
    ).set_index("rep_id")
    assert out.loc[1, "run_rate_mape"] == pytest.approx(0.25)  # (0.2 + 0.25 + 0.3) / 3
    assert out.loc[1, "run_rate_bias"] == pytest.approx(0.25 / 3)  # over-projects
    assert out.loc[1, "pipeline_mape"] == pytest.approx(0.05)
    assert out.loc[1, "pipeline_bias"] == pytest.approx(-0.05 / 3)  # under-projects
    assert out.loc[1, "run_rate_periods"] == 3
    assert out.loc[1, "best_method"] == "pipeline"
    assert pd.isna(out.loc[2, "best_method"])  # 2 periods < 3
    assert out.loc[2, "run_rate_mape"] == 0
    assert out.loc[3, "pipeline_periods"] == 2
    assert out.loc[3, "best_method"] == "run_rate"  # pipeline's 0 error is on too few periods
    assert out.loc[4, "run_rate_periods"] == 0
    assert np.isnan(out.loc[4, "run_rate_mape"])
    assert pd.isna(out.loc[4, "best_method"])


def test_error_summary_prefers_the_run_rate_on_a_tie():
    out = error_summary(projections([(1, 100, 110, 90)] * 3))
    assert out["best_method"].tolist() == ["run_rate"]


def test_no_history_gives_no_projection_and_no_best_method():
    empty = monthly([{"rep_id": 1, "month": "2020-01", "won_revenue": 0}]).iloc[:0]
    out = backtest(empty, BacktestConfig(as_of=date(2026, 5, 1)))
    assert out.empty
    summary = error_summary(out)
    assert summary.empty


def test_chosen_methods():
    def summary(key: str, rows: list[tuple[int, str | None]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                key: [r for r, _ in rows],
                "period_kind": "month",
                "metric": "won_revenue",
                "best_method": [m for _, m in rows],
            }
        )

    reps = summary("rep_id", [(1, "run_rate"), (2, "pipeline"), (3, None)])
    teams = summary("team_id", [(10, "pipeline"), (11, None)])
    rep_teams = pd.DataFrame({"rep_id": [1, 2], "team_id": [10, 11]})
    out = chosen_methods(reps, teams, rep_teams).set_index(["subject_type", "subject_id"])
    assert out.loc[("rep", 1), "method"] == "pipeline"  # the team's, over its own
    assert out.loc[("rep", 2), "method"] == "pipeline"  # team unknown: its own
    assert out.loc[("rep", 3), "method"] == "run_rate"  # nothing known
    assert out.loc[("team", 10), "method"] == "pipeline"
    assert out.loc[("team", 11), "method"] == "run_rate"


def test_rollup_months_weights_reps_by_their_days_on_the_team():
    rep_months = pd.DataFrame(
        {"rep_id": [1, 2], "period_index": [5, 5], "won_revenue": [100.0, 40.0]}
    )
    tenure = pd.DataFrame(
        {"rep_id": [1, 2], "period_index": [5, 5], "team_id": [10, 10], "weight": [1.0, 0.5]}
    )
    out = rollup_months(rep_months, tenure)
    assert out.to_dict("records") == [{"team_id": 10, "period_index": 5, "won_revenue": 120.0}]
