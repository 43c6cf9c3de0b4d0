"""Tests for analytics.coaching_record on hand-built histories whose answers are worked out in
the comments. Month indices: 2026-01 is 2026 * 12 = 24312, so 2026-03 is 24314."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.coaching_record import (
    RECORD_COLUMNS,
    RecordConfig,
    coaching_record,
    current_runs,
    record_columns,
)

JAN = 24312
FOCUS = {"conversion": "opportunities", "cycle": "cycle", "win_rate": "win_rate"}


def month(i: int) -> str:
    return f"{2026 + i // 12}-{i % 12 + 1:02d}"


def rows(rep: int, named: list[str | None], **ratios: list[float | None]) -> list[dict[str, Any]]:
    """One row per month from 2026-01: ``named[i]`` is the focus driver named in month i,
    ``ratios[d][i]`` driver d's vs_team; a None in ``named`` with no ratio at all is a gap
    (no row: the rep has no figures that month)."""
    out = []
    for i, driver in enumerate(named):
        values = {d: v[i] for d, v in ratios.items()}
        if driver == "gap":
            continue
        out.append(
            {
                "rep_id": rep,
                "period": month(i),
                "period_index": JAN + i,
                "coaching_focus": FOCUS.get(driver) if driver else None,
                "focus_driver": driver,
                **{f"{d}_vs_team": v for d, v in values.items()},
            }
        )
    return out


def history(*parts: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([r for part in parts for r in part])


def entry(record: pd.DataFrame, rep: int, period: str) -> dict[str, Any]:
    (found,) = record[(record["rep_id"] == rep) & (record["period"] == period)].to_dict("records")
    return found


def test_improving_then_resolved_with_the_issue_numbers():
    # Named in March at 0.52; April 0.58 (+0.06), May 0.63 (+0.11): improving, still below
    # 0.67. Another month at 0.71 would be resolved.
    h = history(
        rows(
            1,
            [None, None, "conversion", "conversion", "conversion"],
            conversion=[1.0, 1.0, 0.52, 0.58, 0.63],
        )
    )
    record = coaching_record(h)
    assert list(record.columns) == list(RECORD_COLUMNS)
    march = entry(record, 1, "2026-03")
    assert march["vs_team"] == pytest.approx(0.52)
    assert (march["after_1_period"], march["after_1_vs_team"]) == ("2026-04", pytest.approx(0.58))
    assert (march["after_2_period"], march["after_2_vs_team"]) == ("2026-05", pytest.approx(0.63))
    # May is the rep's last month: June has not happened.
    assert march["after_3_period"] is None and np.isnan(march["after_3_vs_team"])
    assert march["followed"] == 2
    assert march["change"] == pytest.approx(0.11)
    assert march["verdict"] == "improving"
    assert march["summary"] == (
        "opportunities named in 2026-03; opportunities per activity 0.52× team in 2026-03, "
        "0.58× in 2026-04, 0.63× in 2026-05: improving"
    )
    assert entry(record, 1, "2026-05")["verdict"] == "too_early"
    assert entry(record, 1, "2026-05")["followed"] == 0
    # January and February named nothing: no entries.
    assert set(record["period"]) == {"2026-03", "2026-04", "2026-05"}

    # The issue's run: 0.52, 0.58, 0.63 from March, judged from its start.
    may = entry(record, 1, "2026-05")
    assert (may["run_verdict"], may["run_change"]) == ("improving", pytest.approx(0.11))
    assert may["run_summary"] == "opportunities since 2026-03: 0.52× → 0.58× → 0.63×, improving"

    resolved = history(rows(1, ["conversion", "conversion", None], conversion=[0.52, 0.6, 0.71]))
    first = entry(coaching_record(resolved), 1, "2026-01")
    assert first["verdict"] == "resolved" and first["latest_performance"] == pytest.approx(0.71)


def test_stalled_run_counts_periods_without_improvement():
    # The same win-rate focus for five months: 0.40, 0.39, 0.42, 0.41, 0.43. At May (0.43)
    # no improvement of 0.05 since any of them (0.43 − 0.39 = 0.04 < 0.05).
    h = history(
        rows(
            7,
            ["win_rate"] * 5,
            win_rate=[0.40, 0.39, 0.42, 0.41, 0.43],
            conversion=[1.0] * 5,
        )
    )
    record = coaching_record(h)
    may = entry(record, 7, "2026-05")
    assert (may["run_start"], may["run_periods"]) == ("2026-01", 5)
    assert may["stalled_periods"] == 5 and may["stalled_since"] == "2026-01"
    # The run's verdict looks at its last 3 months: 0.42 (March) to 0.43, not improving.
    assert may["run_verdict"] == "not_improving"
    assert may["run_change"] == pytest.approx(0.01)
    assert may["run_summary"] == (
        "win rate since 2026-01: 0.40× → 0.39× → 0.42× → 0.41× → 0.43×, not improving over "
        "the last 3 months"
    )
    # At February (0.39): no better than January, stalled 2 periods, not improving.
    february = entry(record, 7, "2026-02")
    assert february["stalled_periods"] == 2 and february["run_verdict"] == "not_improving"
    # The January entry: 0.40 then, last known within 3 months 0.41: not improving.
    january = entry(record, 7, "2026-01")
    assert january["verdict"] == "not_improving" and january["followed"] == 3
    (run,) = current_runs(h, record).to_dict("records")
    assert (run["period"], run["stalled_periods"]) == ("2026-05", 5)


def test_a_dip_recovered_from_ends_the_stall():
    # 0.40, 0.30, 0.42, 0.41, 0.43: at May no better than January, but 0.13 better than the
    # February dip: the driver improved since February, so the stall counts March to May.
    h = history(rows(15, ["win_rate"] * 5, win_rate=[0.40, 0.30, 0.42, 0.41, 0.43]))
    may = entry(coaching_record(h), 15, "2026-05")
    assert (may["stalled_periods"], may["stalled_since"]) == (3, "2026-03")
    # February itself fell from January: stalled 2 periods, worsening.
    february = entry(coaching_record(h), 15, "2026-02")
    assert february["stalled_periods"] == 2 and february["run_verdict"] == "worsening"


def test_a_recent_rise_is_not_a_stall():
    # Flat at 0.47 for a year, then 0.42, 0.44, 0.50: no better than a year ago (0.03), but
    # 0.06 better than last month: improving lately, stalled 1 month (itself), not 15.
    ratios = [0.47] * 12 + [0.42, 0.44, 0.50]
    h = history(rows(16, ["activity"] * 15, activity=ratios))
    (run,) = current_runs(h, coaching_record(h)).to_dict("records")
    assert run["run_verdict"] == "improving" and run["stalled_periods"] == 1
    # A month later, flat at 0.51: stalled 2 months (0.51 − 0.50 < 0.05).
    h = history(rows(16, ["activity"] * 16, activity=[*ratios, 0.51]))
    (run,) = current_runs(h, coaching_record(h)).to_dict("records")
    assert (run["stalled_periods"], run["stalled_since"]) == (2, "2027-03")


def test_a_stall_counts_only_since_the_last_improvement():
    # 0.30, 0.31, 0.45, 0.46, 0.44: improved in March (+0.14), then flat. At May the driver
    # is no better than in March (0.44 − 0.45 < 0.05) but better than February (+0.13).
    h = history(rows(2, ["win_rate"] * 5, win_rate=[0.30, 0.31, 0.45, 0.46, 0.44]))
    record = coaching_record(h)
    may = entry(record, 2, "2026-05")
    assert may["stalled_periods"] == 3 and may["stalled_since"] == "2026-03"
    # Lately (March to May) flat: the rise of March does not make the run "improving" now.
    assert may["run_periods"] == 5 and may["run_verdict"] == "not_improving"
    # In April the last 3 months were February to April: +0.15, improving.
    april = entry(record, 2, "2026-04")
    assert april["run_verdict"] == "improving" and april["run_change"] == pytest.approx(0.15)
    assert april["run_summary"].endswith("0.46×, improving over the last 3 months")


def test_focus_change_starts_a_new_run():
    # Conversion named Jan-Feb, win rate Mar-Apr: the run at April is two months long.
    h = history(
        rows(
            3,
            ["conversion", "conversion", "win_rate", "win_rate"],
            conversion=[0.5, 0.5, 0.8, 0.9],
            win_rate=[0.9, 0.9, 0.5, 0.5],
        )
    )
    record = coaching_record(h)
    april = entry(record, 3, "2026-04")
    assert (april["run_start"], april["run_periods"], april["stalled_periods"]) == (
        "2026-03",
        2,
        2,
    )
    # The January entry follows conversion (the driver named then), not the later focus:
    # 0.5, 0.8 (March), 0.9 (April): resolved.
    january = entry(record, 3, "2026-01")
    assert [january[f"after_{k}_vs_team"] for k in (1, 2, 3)] == pytest.approx([0.5, 0.8, 0.9])
    assert january["verdict"] == "resolved"


def test_a_gap_in_periods_breaks_the_run_and_leaves_an_empty_slot():
    # No row in February (the rep had no figures): January's entry has February with no
    # figure and March at 0.45; the run at March starts again in March.
    h = history(
        rows(4, ["win_rate", "gap", "win_rate", "win_rate"], win_rate=[0.40, None, 0.45, 0.40])
    )
    record = coaching_record(h)
    january = entry(record, 4, "2026-01")
    assert january["after_1_period"] == "2026-02" and np.isnan(january["after_1_vs_team"])
    assert january["after_2_vs_team"] == pytest.approx(0.45)
    assert january["followed"] == 2  # February has no figure
    assert "no figure in 2026-02" in january["summary"]
    april = entry(record, 4, "2026-04")
    assert (april["run_start"], april["run_periods"], april["stalled_periods"]) == (
        "2026-03",
        2,
        2,
    )
    # A month with no focus named breaks it too.
    h2 = history(rows(5, ["win_rate", None, "win_rate"], win_rate=[0.4, 0.4, 0.4]))
    march = entry(coaching_record(h2), 5, "2026-03")
    assert march["run_periods"] == 1 and march["stalled_periods"] == 1


def test_cycle_lower_is_better_and_recent_window_preferred():
    # Cycle 1.6× the team's (performance 0.625), then 1.25× (0.8): resolved. The recent
    # window's ratio is read where present, the year's where it is missing.
    h = history(rows(6, ["cycle", "cycle", "cycle"], cycle=[1.6, 1.6, 1.6]))
    h["cycle_recent_vs_team"] = [None, 1.25, 1.45]
    record = coaching_record(h)
    january = entry(record, 6, "2026-01")
    assert january["vs_team"] == pytest.approx(1.6)
    assert january["performance"] == pytest.approx(0.625)
    assert january["after_1_vs_team"] == pytest.approx(1.25)
    assert january["after_1_performance"] == pytest.approx(0.8)
    # The last known is March: 1 / 1.45 = 0.69 > 0.67, resolved.
    assert january["latest_performance"] == pytest.approx(1 / 1.45)
    assert january["verdict"] == "resolved"
    # Slower cycle, lower performance: 1.6 → 1.9 is worsening.
    worse = history(rows(6, ["cycle", "cycle"], cycle=[1.6, 1.9]))
    assert entry(coaching_record(worse), 6, "2026-01")["verdict"] == "worsening"


def test_horizon_and_noise_are_configurable():
    h = history(rows(8, ["win_rate"] * 4, win_rate=[0.40, 0.43, 0.43, 0.60]))
    # Horizon 1: February only, +0.03 < 0.05: not improving. Horizon 3 reaches April: +0.2.
    short = coaching_record(h, config=RecordConfig(horizon=1))
    assert list(short.columns) == list(record_columns(1))
    assert entry(short, 8, "2026-01")["verdict"] == "not_improving"
    assert entry(coaching_record(h), 8, "2026-01")["verdict"] == "improving"
    # A noise of 0.02 makes +0.03 a move.
    loose = coaching_record(h, config=RecordConfig(horizon=1, noise=0.02))
    assert entry(loose, 8, "2026-01")["verdict"] == "improving"
    with pytest.raises(ValueError, match="horizon"):
        RecordConfig(horizon=0)


def test_reps_are_kept_apart_and_unknown_ratios_are_too_early():
    # Two reps in the same months: rep 9's February is not rep 10's. Rep 10's win rate is
    # unknown then: too early to tell, and no stall on an unknown figure.
    h = history(
        rows(9, ["win_rate", "win_rate"], win_rate=[0.4, 0.6]),
        rows(10, ["win_rate", "win_rate"], win_rate=[None, 0.3]),
    )
    record = coaching_record(h)
    assert entry(record, 9, "2026-01")["verdict"] == "improving"
    ten = entry(record, 10, "2026-01")
    assert ten["verdict"] == "too_early" and ten["stalled_periods"] == 0
    assert ten["summary"].startswith("win rate named in 2026-01; win rate no figure in 2026-01")
    assert entry(record, 10, "2026-02")["stalled_periods"] == 1
    runs = current_runs(h, record)
    assert sorted(runs["rep_id"]) == [9, 10]


def test_no_current_run_when_the_last_period_names_nothing():
    h = history(rows(11, ["win_rate", None], win_rate=[0.4, 0.4]))
    assert current_runs(h, coaching_record(h)).empty


def test_empty_and_malformed_histories():
    empty = coaching_record(
        pd.DataFrame(columns=["rep_id", "period", "period_index", "coaching_focus", "focus_driver"])
    )
    assert empty.empty and list(empty.columns) == list(RECORD_COLUMNS)
    with pytest.raises(ValueError, match="focus_driver"):
        coaching_record(pd.DataFrame({"rep_id": [1], "period": ["2026-01"], "period_index": [1]}))
    twice = history(rows(1, ["win_rate"], win_rate=[0.4]), rows(1, ["win_rate"], win_rate=[0.4]))
    with pytest.raises(ValueError, match="more than one row"):
        coaching_record(twice)
    mixed = history(rows(1, ["win_rate"], win_rate=[0.4]))
    mixed = pd.concat([mixed, mixed.assign(period="2026-Q1", period_index=8104)])
    with pytest.raises(ValueError, match="one period kind"):
        coaching_record(mixed)


def test_a_new_driver_is_followed_generically():
    # A driver the record knows no phrase for ("pipeline" as the lead adds it, or any other)
    # is read from its own columns.
    h = history(rows(12, ["pipeline", "pipeline"], pipeline=[0.5, 0.7]))
    h["coaching_focus"] = "pipeline"
    h["pipeline_recent_vs_team"] = [0.52, 0.71]
    first = entry(coaching_record(h), 12, "2026-01")
    assert (first["vs_team"], first["after_1_vs_team"]) == (
        pytest.approx(0.52),
        pytest.approx(0.71),
    )
    assert first["summary"].startswith("pipeline named in 2026-01; opportunities per month 0.52×")


def test_every_reps_long_run_is_judged_lately():
    # Two reps with the same 5-month run: each one's verdict and sentence are its own
    # (a rep's rows further down the frame once lost the "over the last" of the sentence).
    h = history(
        rows(13, ["win_rate"] * 5, win_rate=[0.30, 0.31, 0.45, 0.46, 0.44]),
        rows(14, ["win_rate"] * 5, win_rate=[0.30, 0.31, 0.45, 0.46, 0.44]),
    )
    runs = current_runs(h, coaching_record(h))
    assert list(runs["rep_id"]) == [13, 14]
    assert list(runs["run_verdict"]) == ["not_improving", "not_improving"]
    assert all(s.endswith("not improving over the last 3 months") for s in runs["run_summary"])
