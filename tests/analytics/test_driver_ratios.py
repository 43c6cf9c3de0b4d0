"""The ratios a coaching row does not store, derived when it is read (analytics.driver_ratios):
bit for bit those the driver table computed and judged on, in both data shapes, for window
and recent foci, from a row with its null figures left out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.driver_ratios import DERIVED, completed, with_ratios
from analytics.drivers import DRIVER_TABLE_COLUMNS, driver_table
from tests.analytics import planted


def _table(activities: bool) -> pd.DataFrame:
    org = planted.Org(seed=3, activities=activities, collapse=True)
    frame, reps = planted.metrics(org)
    return driver_table(frame, reps[["rep_id", "team_id", "role"]])


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("activities", [True, False])
def test_the_derived_ratios_are_the_computed_ones(activities: bool) -> None:
    table = _table(activities)
    # The table has what the test must cover: foci of both windows, contributions that are
    # null outside the row's identity, and ratios over a zero or missing denominator.
    assert set(table["focus_window"].dropna()) == {"window", "recent"}
    outside = "pipeline" if activities else "activity"
    assert table[f"{outside}_contribution"].isna().all()
    assert table["revenue_vs_trailing"].isna().any()
    assert set(DRIVER_TABLE_COLUMNS) > DERIVED
    stored = table.drop(columns=list(DERIVED))
    derived = with_ratios(stored)
    for column in sorted(DERIVED):
        expected = table[column].to_numpy(dtype=float)
        np.testing.assert_array_equal(derived[column].to_numpy(dtype=float), expected, column)


@pytest.mark.parametrize("activities", [True, False])
def test_a_stored_row_reads_back_as_the_compute_made_it(activities: bool) -> None:
    table = _table(activities)
    keys = [c for c in DRIVER_TABLE_COLUMNS if c not in ("rep_id", "period")]
    for row in table.sample(60, random_state=1).to_dict("records"):
        full = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        stored = {k: v for k, v in full.items() if k not in DERIVED and v is not None}
        read = completed(stored, keys)
        assert list(read) == keys
        for k in keys:
            expected = full[k].item() if isinstance(full[k], np.generic) else full[k]
            assert _same(read[k], expected), (k, read[k], expected)
