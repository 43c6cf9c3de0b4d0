"""Tests for analytics.rollups; expectations are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.rollups import ROLLUP_COLUMNS, VARIANCE_COLUMNS, rollup, variance_between_teams


def gap_rows(
    rows: list[tuple[int, int | None, int | None, float | None, float | None]],
    *,
    metric: str = "won_revenue",
    period: str = "2026-03",
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["rep_id", "team_id", "manager_id", "actual", "target"])
    frame["metric"] = metric
    frame["period"] = period
    frame["attainment"] = frame["actual"] / frame["target"].where(frame["target"] > 0)
    return frame


# Team 1 (manager 100): 4 reps, 3 below target. Team 2 (manager 200): 3 reps, 1 below.
ROWS = gap_rows(
    [
        (1, 1, 100, 50.0, 100.0),  # 0.5
        (2, 1, 100, 80.0, 100.0),  # 0.8
        (3, 1, 100, 90.0, 100.0),  # 0.9
        (4, 1, 100, 200.0, 100.0),  # 2.0
        (5, 2, 200, 120.0, 100.0),  # 1.2
        (6, 2, 200, 100.0, 100.0),  # 1.0: on target is not below
        (7, 2, 200, 60.0, 100.0),  # 0.6
    ]
)


def by(frame: pd.DataFrame, column: str, value: object) -> pd.Series:
    match = frame[frame[column] == value]
    assert len(match) == 1
    return match.iloc[0]


def test_team_rollup_sums_and_shares() -> None:
    out = rollup(ROWS)
    assert list(out.columns) == ["team_id", *ROLLUP_COLUMNS]
    t1 = by(out, "team_id", 1)
    assert t1["actual"] == pytest.approx(420.0)
    assert t1["target"] == pytest.approx(400.0)
    # The team makes its number (420 / 400) even though 3 of 4 reps miss theirs.
    assert t1["attainment"] == pytest.approx(1.05)
    assert (t1["reps"], t1["reps_with_target"], t1["reps_below_target"]) == (4, 4, 3)
    assert t1["share_below_target"] == pytest.approx(0.75)
    assert bool(t1["team_wide_gap"])
    t2 = by(out, "team_id", 2)
    assert t2["attainment"] == pytest.approx(280.0 / 300.0)
    assert t2["share_below_target"] == pytest.approx(1 / 3)
    assert not bool(t2["team_wide_gap"])


def test_wide_gap_needs_more_than_the_share_and_enough_reps() -> None:
    # Exactly half below is not "more than half".
    half = gap_rows(
        [
            (1, 1, 9, 50.0, 100.0),
            (2, 1, 9, 50.0, 100.0),
            (3, 1, 9, 150.0, 100.0),
            (4, 1, 9, 150.0, 100.0),
        ]
    )
    assert not bool(by(rollup(half), "team_id", 1)["team_wide_gap"])
    # Two of two below, but fewer than min_reps=3 reps have targets.
    small = gap_rows([(1, 1, 9, 50.0, 100.0), (2, 1, 9, 50.0, 100.0), (3, 1, 9, 50.0, None)])
    row = by(rollup(small), "team_id", 1)
    assert (row["reps"], row["reps_with_target"], row["reps_below_target"]) == (3, 2, 2)
    assert row["share_below_target"] == 1.0
    assert not bool(row["team_wide_gap"])
    assert bool(by(rollup(small, min_reps=2), "team_id", 1)["team_wide_gap"])


def test_reps_without_target_do_not_count_towards_attainment() -> None:
    rows = gap_rows([(1, 1, 9, 50.0, 100.0), (2, 1, 9, 70.0, None), (3, 1, 9, 30.0, 0.0)])
    row = by(rollup(rows), "team_id", 1)
    # actual sums everyone (150); attainment uses only reps with a target: 50 / 100.
    assert row["actual"] == pytest.approx(150.0)
    assert row["target"] == pytest.approx(100.0)
    assert row["attainment"] == pytest.approx(0.5)
    assert row["reps_with_target"] == 1


def test_manager_rollup_and_lookup_from_reps() -> None:
    out = rollup(ROWS, by="manager_id")
    assert list(out["manager_id"]) == [100, 200]
    assert by(out, "manager_id", 100)["reps_below_target"] == 3
    reps = pd.DataFrame(
        {"rep_id": [1, 2, 3, 4, 5, 6, 7], "manager_id": [100, 100, 300, 300, 300, 300, 300]}
    )
    out = rollup(ROWS.drop(columns=["manager_id"]), by="manager_id", reps=reps)
    m300 = by(out, "manager_id", 300)
    # Reps 3..7: attainments .9, 2, 1.2, 1, .6 -> 2 of 5 below.
    assert (m300["reps_with_target"], m300["reps_below_target"]) == (5, 2)
    with pytest.raises(ValueError, match="manager_id"):
        rollup(ROWS.drop(columns=["manager_id"]), by="manager_id")


def test_below_by_status_for_running_periods() -> None:
    rows = ROWS.copy()
    # Mid-period: attainment is low for everyone, but only two are behind pace.
    rows["status"] = [
        "at_risk",
        "on_track",
        "on_track",
        "achieved",
        "achieved",
        "on_track",
        "missed",
    ]
    by_status = rollup(rows, below_by="status")
    assert by(by_status, "team_id", 1)["reps_below_target"] == 1
    assert by(by_status, "team_id", 2)["reps_below_target"] == 1
    with pytest.raises(ValueError, match="status"):
        rollup(ROWS, below_by="status")


def test_non_additive_metrics_get_no_sums() -> None:
    rows = gap_rows(
        [(1, 1, 9, 0.2, 0.3), (2, 1, 9, 0.4, 0.3), (3, 1, 9, 0.1, 0.3)], metric="win_rate"
    )
    row = by(rollup(rows), "team_id", 1)
    assert np.isnan(row["actual"]) and np.isnan(row["attainment"])
    assert row["reps_below_target"] == 2
    assert bool(row["team_wide_gap"])


def test_team_rows_and_rows_without_group_are_ignored() -> None:
    rows = ROWS.copy()
    rows["subject_type"] = "rep"
    team_row = rows.iloc[[0]].assign(subject_type="team", rep_id=None, actual=9999.0)
    no_team = rows.iloc[[0]].assign(team_id=None, actual=5000.0)
    out = rollup(pd.concat([rows, team_row, no_team], ignore_index=True))
    assert by(out, "team_id", 1)["actual"] == pytest.approx(420.0)
    assert len(out) == 2


def test_rollup_per_metric_and_period() -> None:
    rows = pd.concat([ROWS, ROWS.assign(period="2026-04", actual=ROWS["actual"] * 2)])
    out = rollup(rows)
    assert len(out) == 4
    april = out[(out["team_id"] == 1) & (out["period"] == "2026-04")].iloc[0]
    assert april["actual"] == pytest.approx(840.0)


# --------------------------------------------------------------------- variance between


def test_eta_squared_by_hand() -> None:
    # Team 1: .5, .8, .9, 2.0 (mean 1.05); team 2: 1.2, 1.0, .6 (mean .9333).
    # Overall mean = 7.0 / 7 = 1.0.
    # between = 4 (.05)^2 + 3 (-.0667)^2 = .01 + .013333 = .023333
    # total = .25 + .04 + .01 + 1 + .04 + 0 + .16 = 1.5
    out = variance_between_teams(ROWS)
    assert list(out.columns) == list(VARIANCE_COLUMNS)
    row = out.iloc[0]
    assert (row["reps"], row["groups"]) == (7, 2)
    assert row["mean"] == pytest.approx(1.0)
    assert row["total_ss"] == pytest.approx(1.5)
    assert row["between_ss"] == pytest.approx(0.01 + 3 * (0.9333333333 - 1.0) ** 2)
    assert row["eta_squared"] == pytest.approx((0.01 + 3 * (2.8 / 3 - 1.0) ** 2) / 1.5)


def test_eta_squared_extremes() -> None:
    # All the spread between teams: each team uniform.
    between = gap_rows([(1, 1, 9, 50.0, 100.0), (2, 1, 9, 50.0, 100.0), (3, 2, 9, 150.0, 100.0)])
    assert variance_between_teams(between).iloc[0]["eta_squared"] == pytest.approx(1.0)
    # All the spread within teams: identical team means.
    within = gap_rows(
        [
            (1, 1, 9, 50.0, 100.0),
            (2, 1, 9, 150.0, 100.0),
            (3, 2, 9, 50.0, 100.0),
            (4, 2, 9, 150.0, 100.0),
        ]
    )
    assert variance_between_teams(within).iloc[0]["eta_squared"] == pytest.approx(0.0)
    # Everyone equal: no variance to share out.
    equal = gap_rows([(1, 1, 9, 10.0, 30.0), (2, 2, 9, 10.0, 30.0)])
    assert np.isnan(variance_between_teams(equal).iloc[0]["eta_squared"])


def test_variance_per_metric_and_period_ignores_missing() -> None:
    rows = pd.concat(
        [
            ROWS,
            gap_rows(
                [(1, 1, 9, 50.0, 100.0), (2, 2, 9, 80.0, 100.0), (3, 2, 9, 10.0, None)],
                period="2026-04",
            ),
        ]
    )
    out = variance_between_teams(rows)
    april = out[out["period"] == "2026-04"].iloc[0]
    # Rep 3 has no attainment: two reps in two teams, all the variance is between teams.
    assert april["reps"] == 2
    assert april["eta_squared"] == pytest.approx(1.0)
    by_manager = variance_between_teams(ROWS, by="manager_id")
    assert by_manager.iloc[0]["eta_squared"] == pytest.approx(out.iloc[0]["eta_squared"])
