"""The coaching focus against planted weaknesses (tests/analytics/planted.py): at realistic
volumes and noise, the planted weakness is named for at least 95% of the planted reps and at
most 5% of healthy reps are flagged, with and without activities, and a recent collapse is
named from the recent window. docs/metrics.md shows the confusion matrices."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.analytics.planted import Org, confusion, named

SEEDS = range(24)


def _results(*, activities: bool, collapse: bool) -> pd.DataFrame:
    return pd.concat(
        [named(Org(seed=s, activities=activities, collapse=collapse)) for s in SEEDS],
        ignore_index=True,
    )


@pytest.mark.parametrize("collapse", [False, True], ids=["steady", "with-collapse"])
@pytest.mark.parametrize("activities", [True, False], ids=["activities", "no-activities"])
def test_planted_weaknesses_are_named_and_healthy_reps_left_alone(
    activities: bool, collapse: bool
) -> None:
    results = _results(activities=activities, collapse=collapse)
    print(f"\n{confusion(results)}")
    planted = results[(results["truth"] != "healthy") & ~results["collapse"]]
    healthy = results[results["truth"] == "healthy"]
    assert len(planted) >= 250 and len(healthy) >= 500  # the rates below have teeth
    hit = (planted["focus"] == planted["expected"]).mean()
    flagged = healthy["focus"].notna().mean()
    assert hit >= 0.95, confusion(results)
    assert flagged <= 0.05, confusion(results)
    # Every kind of weakness is found, not only the easy ones.
    by_kind = (planted["focus"] == planted["expected"]).groupby(planted["truth"]).mean()
    assert by_kind.min() >= 0.85, by_kind
    if not activities:
        # Without activities nobody is judged on them.
        assert not results["focus"].isin(["activity", "opportunities"]).any()


@pytest.mark.parametrize("activities", [True, False], ids=["activities", "no-activities"])
def test_a_recent_collapse_is_named_from_the_recent_window(activities: bool) -> None:
    results = _results(activities=activities, collapse=True)
    fell = results[results["collapse"]]
    assert len(fell) >= 100
    named_right = fell["focus"] == fell["expected"]
    assert named_right.mean() >= 0.95, fell[~named_right]
    # Found in the recent window: a year of history would have averaged most of them away.
    assert (fell.loc[named_right, "focus_window"] == "recent").mean() >= 0.9
