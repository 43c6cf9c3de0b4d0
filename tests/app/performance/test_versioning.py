"""Row digests: what counts as a change of a result row."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from app.performance.versioning import digests


def _one(**columns: object) -> int:
    frame = pd.DataFrame({k: [v] for k, v in columns.items()})
    return int(digests(frame, list(columns))[0])


def test_equal_figures_have_equal_digests_whatever_their_dtype() -> None:
    ints = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    floats = pd.DataFrame({"a": [1.0, 2.0 + 1e-13], "b": ["x", None]})  # float noise
    objects = pd.DataFrame({"a": pd.Series([1, 2], dtype=object), "b": ["x", np.nan]})
    assert (digests(ints, ["a", "b"]) == digests(floats, ["a", "b"])).all()
    assert (digests(ints, ["a", "b"]) == digests(objects, ["a", "b"])).all()


def test_a_changed_figure_text_or_date_changes_the_digest() -> None:
    base = _one(a=1.0, b="x", d=pd.Timestamp("2026-11-01"))
    assert _one(a=1.001, b="x", d=pd.Timestamp("2026-11-01")) != base
    assert _one(a=1.0, b="y", d=pd.Timestamp("2026-11-01")) != base
    assert _one(a=1.0, b="x", d=pd.Timestamp("2026-11-02")) != base
    assert _one(a=1.0, b="x", d=pd.NaT) != base
    assert _one(a=None, b="x", d=pd.Timestamp("2026-11-01")) != base


def test_datetimes_count_by_day_and_missing_ones_alike() -> None:
    frame = pd.DataFrame({"d": pd.to_datetime(["2026-11-01 09:30", None, "2026-11-01 17:00"])})
    out = digests(frame, ["d"])
    assert out[0] == out[2] != out[1]
    again = pd.DataFrame({"d": pd.Series([pd.Timestamp(date(2026, 11, 1)), pd.NaT])})
    assert (digests(again, ["d"]) == out[:2]).all()


def test_column_order_matters() -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert digests(frame, ["a", "b"])[0] != digests(frame, ["b", "a"])[0]
