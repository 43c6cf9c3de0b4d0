"""Tests for analytics.trends; expectations are worked out by hand in the comments."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics.trends import RANK_COLUMNS, STREAK_COLUMNS, TREND_COLUMNS, ranks, streaks, trend

MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]


def history(
    rep: int, metric: str, values: list[float | None], months: list[str] = MONTHS
) -> pd.DataFrame:
    return pd.DataFrame(
        {"rep_id": rep, "metric": metric, "period": months, "value": values}
    ).dropna(subset=["value"])


def one(frame: pd.DataFrame, **where: object) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    assert mask.sum() == 1, frame
    return frame[mask].iloc[0]


# ----------------------------------------------------------------------------- trend


def test_trend_slope_mean_and_direction() -> None:
    h = pd.concat(
        [
            history(1, "won_revenue", [10, 12, 14, 16, 18, 20]),  # slope 2, mean 15 -> +13%
            history(2, "won_revenue", [20, 18, 16, 14, 12, 10]),
            history(3, "won_revenue", [100, 101, 99, 100, 101, 100]),
        ]
    )
    out = trend(h)
    assert list(out.columns) == ["rep_id", *TREND_COLUMNS]
    up = one(out, rep_id=1)
    assert up["slope"] == pytest.approx(2.0)
    assert up["mean"] == pytest.approx(15.0)
    assert up["relative_slope"] == pytest.approx(2.0 / 15.0)
    assert up["direction"] == "up" and up["improving"] is True
    assert up["values"] == [10, 12, 14, 16, 18, 20]
    assert (up["first_period"], up["last_period"], up["points"]) == ("2026-01", "2026-06", 6)
    down = one(out, rep_id=2)
    assert down["slope"] == pytest.approx(-2.0)
    assert down["direction"] == "down" and down["improving"] is False
    # x = 0..5, y - 100 = 0,1,-1,0,1,0: Σ(x - 2.5)(y - ȳ) with ȳ = 100.1667:
    # Σ (x-2.5) y' = -2.5*0 -1.5*1 -0.5*-1 +0.5*0 +1.5*1 +2.5*0 = 0.5; Σ(x-2.5)^2 = 17.5.
    flat = one(out, rep_id=3)
    assert flat["slope"] == pytest.approx(0.5 / 17.5)
    assert flat["direction"] == "flat" and flat["improving"] is None


def test_trend_uses_only_the_last_periods_and_skips_gaps() -> None:
    # 8 months; window = the last 6 (2026-03..2026-08); 2026-05 missing for rep 1.
    months = [f"2026-{m:02d}" for m in range(1, 9)]
    h = history(1, "won_revenue", [1000, 1000, 1, 2, None, 4, 5, 6], months)
    row = one(trend(h), rep_id=1)
    assert row["first_period"] == "2026-03"
    assert row["points"] == 5
    assert row["values"][2] != row["values"][2]  # NaN where the month is missing
    # Points (x, y): (0,1) (1,2) (3,4) (4,5) (5,6): a perfect line y = x + 1, slope 1.
    assert row["slope"] == pytest.approx(1.0)


def test_lower_is_better_metrics_improve_downwards() -> None:
    h = history(1, "sales_cycle_days", [60, 55, 50, 45, 40, 35])
    row = one(trend(h), rep_id=1)
    assert row["direction"] == "down"
    assert row["improving"] is True


def test_too_few_points_have_no_direction() -> None:
    h = history(1, "won_revenue", [None, None, None, None, 5, 9])
    row = one(trend(h), rep_id=1)
    assert row["points"] == 2
    assert np.isnan(row["slope"])
    assert row["direction"] is None


def test_trend_threshold_is_relative() -> None:
    # slope 1 per period on a mean of 102.5: ~1% -> flat at 2%, up at 0.5%.
    h = history(1, "won_revenue", [100, 101, 102, 103, 104, 105])
    assert one(trend(h), rep_id=1)["direction"] == "flat"
    assert one(trend(h, flat_within=0.005), rep_id=1)["direction"] == "up"


def test_trend_end_and_period_index_input() -> None:
    h = pd.DataFrame(
        {
            "rep_id": [7] * 4,
            "metric": "activities",
            "period_index": [24312, 24313, 24314, 24315],
            "period": ["2026-01", "2026-02", "2026-03", "2026-04"],
            "value": [10.0, 20.0, 30.0, 400.0],
        }
    )
    row = one(trend(h, periods=3, end=24314), rep_id=7)
    assert row["last_period"] == "2026-03"
    assert row["slope"] == pytest.approx(10.0)


# --------------------------------------------------------------------------- streaks


def gaps(
    rep: int, outcomes: list[str], months: list[str] = MONTHS, metric: str = "won_revenue"
) -> pd.DataFrame:
    return pd.DataFrame({"rep_id": rep, "metric": metric, "period": months, "status": outcomes})


def test_streaks_count_back_from_the_latest_completed_period() -> None:
    frame = pd.concat(
        [
            # June is still running (at_risk): the run ends at 2026-05 with 2 misses.
            gaps(1, ["achieved", "missed", "achieved", "missed", "missed", "at_risk"]),
            gaps(2, ["missed", "missed", "missed", "missed", "achieved", "achieved"]),
            gaps(3, ["achieved", "missed", "missed", "missed", "missed", "missed"]),
        ]
    )
    out = streaks(frame)
    assert list(out.columns) == ["rep_id", *STREAK_COLUMNS]
    r1 = one(out, rep_id=1)
    assert r1["last_period"] == "2026-05"
    assert (r1["consecutive_misses"], r1["consecutive_hits"]) == (2, 0)
    assert not bool(r1["persistent_underperformer"])
    r2 = one(out, rep_id=2)
    assert (r2["consecutive_misses"], r2["consecutive_hits"]) == (0, 2)
    assert r2["last_outcome"] == "achieved"
    r3 = one(out, rep_id=3)
    assert r3["consecutive_misses"] == 5
    assert bool(r3["persistent_underperformer"])


def test_exactly_n_misses_is_persistent() -> None:
    out = streaks(gaps(1, ["achieved", "achieved", "achieved", "missed", "missed", "missed"]))
    row = one(out, rep_id=1)
    assert row["consecutive_misses"] == 3 and bool(row["persistent_underperformer"])
    out = streaks(
        gaps(1, ["achieved", "achieved", "achieved", "missed", "missed", "missed"]),
        persistent_after=4,
    )
    assert not bool(one(out, rep_id=1)["persistent_underperformer"])


def test_a_period_without_a_row_breaks_the_run() -> None:
    # 2026-03 has no target: the misses in 01-02 do not join those in 04-06.
    frame = gaps(
        1, ["missed", "missed", "missed", "missed", "missed"], [m for m in MONTHS if m != "2026-03"]
    )
    assert one(streaks(frame), rep_id=1)["consecutive_misses"] == 3


def test_streaks_from_attainment_and_as_of() -> None:
    frame = pd.DataFrame(
        {
            "rep_id": 1,
            "metric": "won_revenue",
            "period": ["2026-01", "2026-02", "2026-03"],
            "period_end": pd.to_datetime(["2026-01-31", "2026-02-28", "2026-03-31"]),
            "attainment": [0.5, 0.9, 0.2],
        }
    )
    # By attainment every row is decided: three misses.
    assert one(streaks(frame), rep_id=1)["consecutive_misses"] == 3
    # On 2026-03-15 March has not ended: two misses up to February.
    row = one(streaks(frame, as_of=date(2026, 3, 15)), rep_id=1)
    assert row["last_period"] == "2026-02"
    assert row["consecutive_misses"] == 2
    frame.loc[1, "attainment"] = 1.0
    row = one(streaks(frame, as_of=date(2026, 3, 15)), rep_id=1)
    assert (row["consecutive_misses"], row["consecutive_hits"]) == (0, 1)


def test_streaks_keep_metrics_and_kinds_apart() -> None:
    frame = pd.concat(
        [
            gaps(1, ["missed"] * 6),
            gaps(1, ["achieved"] * 6, metric="activities"),
            pd.DataFrame(
                {
                    "rep_id": 1,
                    "metric": "won_revenue",
                    "period": ["2026-Q1"],
                    "status": ["achieved"],
                }
            ),
        ]
    )
    out = streaks(frame)
    assert one(out, metric="won_revenue", period_kind="month")["consecutive_misses"] == 6
    assert one(out, metric="won_revenue", period_kind="quarter")["consecutive_hits"] == 1
    assert one(out, metric="activities")["consecutive_hits"] == 6


def test_streaks_need_an_outcome_column() -> None:
    with pytest.raises(ValueError, match="status"):
        streaks(pd.DataFrame({"rep_id": [1], "metric": ["x"], "period": ["2026-01"]}))


# ----------------------------------------------------------------------------- ranks


def test_ranks_within_team_and_company_with_ties() -> None:
    frame = pd.DataFrame(
        {
            "rep_id": [1, 2, 3, 4, 5, 6],
            "team_id": [10, 10, 10, 20, 20, None],
            "period": "2026-01",
            "won_revenue": [500.0, 700.0, 700.0, 100.0, np.nan, 300.0],
        }
    )
    out = ranks(frame, metric="won_revenue")
    assert list(out.columns) == [*frame.columns, *RANK_COLUMNS]
    # Team 10: 700, 700 share rank 1; 500 is 3rd of 3 -> percentile 100*(3-3)/2 = 0.
    assert list(out["rank_in_team"][:3]) == [3, 1, 1]
    assert list(out["percentile_in_team"][:3]) == [0.0, 100.0, 100.0]
    # Team 20: only rep 4 has a value -> rank 1, percentile 100; rep 5 is unranked.
    assert out["rank_in_team"][3] == 1 and out["percentile_in_team"][3] == 100.0
    assert pd.isna(out["rank_in_team"][4]) and np.isnan(out["percentile_in_team"][4])
    # Rep 6 has no team: no team rank, but a company rank.
    assert pd.isna(out["rank_in_team"][5])
    # Company (5 values): 700,700 -> 1; 500 -> 3; 300 -> 4; 100 -> 5 (percentile 0).
    assert list(out["rank_in_company"].astype("float64").fillna(-1)) == [3, 1, 1, 5, -1, 4]
    assert out["percentile_in_company"][0] == pytest.approx(100 * (5 - 3) / 4)
    assert out["company_size"][0] == 5


def test_lower_is_better_ranks_ascending_and_periods_are_separate() -> None:
    frame = pd.DataFrame(
        {
            "rep_id": [1, 2, 1, 2],
            "team_id": 1,
            "period": ["2026-01", "2026-01", "2026-02", "2026-02"],
            "sales_cycle_days": [30.0, 60.0, 90.0, 45.0],
        }
    )
    out = ranks(frame, metric="sales_cycle_days")
    assert list(out["rank_in_company"]) == [1, 2, 2, 1]


def test_ranks_outside_the_catalogue_need_a_direction() -> None:
    frame = pd.DataFrame({"team_id": [1, 1], "period": "2026-01", "attainment": [0.5, 1.2]})
    with pytest.raises(ValueError, match="higher_is_better"):
        ranks(frame, metric="attainment")
    out = ranks(frame, metric="attainment", higher_is_better=True)
    assert list(out["rank_in_team"]) == [2, 1]


def test_misses_by_period_counts_runs_and_carries_into_running_periods() -> None:
    from analytics.trends import misses_by_period

    history = pd.DataFrame(
        {
            "rep_id": [1] * 7 + [2, 2],
            "metric": ["won_revenue"] * 9,
            "period": [
                "2026-01",
                "2026-02",
                "2026-03",
                "2026-04",
                "2026-05",
                "2026-07",
                "2026-08",
                "2026-02",
                "2026-01",
            ],
            "status": [
                "missed",
                "missed",
                "achieved",
                "missed",
                "missed",
                "missed",
                "on_track",
                "at_risk",
                "missed",
            ],
        }
    )
    # June has no row: the run restarts in July; August is running and shows July's run.
    # Rep 2's rows come out of order: the result stays aligned with the input.
    assert misses_by_period(history, key="rep_id").tolist() == [1, 2, 0, 1, 2, 1, 1, 1, 1]


def test_misses_by_period_keeps_metrics_and_kinds_apart() -> None:
    from analytics.trends import misses_by_period

    history = pd.DataFrame(
        {
            "rep_id": [1, 1, 1, 1],
            "metric": ["won_revenue", "activities", "won_revenue", "won_revenue"],
            "period": ["2026-01", "2026-02", "2026-02", "2026-Q1"],
            "status": ["missed", "missed", "missed", "missed"],
        }
    )
    assert misses_by_period(history, key="rep_id").tolist() == [1, 1, 2, 1]
