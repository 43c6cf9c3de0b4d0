"""Row digests: what counts as a change of a result row."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.performance import versioning
from app.performance.models import MetricRow, Snapshot
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


def test_digests_are_the_ones_stored_before_the_column_by_column_hash() -> None:
    # Rows stored with digests of the earlier code (a frame of the hashable columns through
    # hash_pandas_object) must still match, or the next compute rewrites every row.
    frame = pd.DataFrame(
        {
            "n": [1.5, np.nan, 3.0],
            "i": [1, 2, 3],
            "t": ["a", None, "c"],
            "d": pd.to_datetime(["2026-11-01", None, "2026-12-01"]),
        }
    )
    columns = ["n", "i", "t", "d"]
    parts = pd.DataFrame({f"c{i}": versioning._hashable(frame[c]) for i, c in enumerate(columns)})
    before = pd.util.hash_pandas_object(parts, index=False).to_numpy().view(np.int64)
    assert (digests(frame, columns) == before).all()


def test_column_order_matters() -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert digests(frame, ["a", "b"])[0] != digests(frame, ["b", "a"])[0]


# ------------------------------------------------------------------------------- write


def _metrics(*rows: tuple[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_type": "rep",
            "subject_id": [r for r, _ in rows],
            "period": "2026-11",
            "period_kind": "month",
            "period_start": date(2026, 11, 1),
            "won_revenue": [v for _, v in rows],
        }
    )


def _write(session: Session, version: int, frame: pd.DataFrame) -> int:
    session.add(Snapshot(id=version, kind="full", as_of=date(2026, 11, 18)))
    session.flush()
    return versioning.write(
        session,
        MetricRow,
        version=version,
        key=("subject_type", "subject_id", "period"),
        frame=frame,
        fields=["period_kind", "period_start", "won_revenue"],
        build=lambda f: {
            "subject_type": ["rep"] * len(f),
            "subject_id": [int(v) for v in f["subject_id"]],
            "period": f["period"].tolist(),
            "period_kind": f["period_kind"].tolist(),
            "period_start": f["period_start"].tolist(),
            "values": [{"won_revenue": float(v)} for v in f["won_revenue"]],
        },
        scope=MetricRow.period == "2026-11",
    )


def _heads(session: Session) -> dict[int, tuple[int, float]]:
    rows = session.scalars(select(MetricRow).where(MetricRow.valid_to.is_(None)))
    return {r.subject_id: (r.valid_from, r.values["won_revenue"]) for r in rows}


def test_write_keeps_unchanged_rows_and_closes_changed_and_removed_ones(session) -> None:
    assert _write(session, 1, _metrics((1, 10.0), (2, 20.0), (3, 30.0))) == 3
    # 1 unchanged, 2 changed, 3 no longer produced, 4 new
    assert _write(session, 2, _metrics((1, 10.0), (2, 25.0), (4, 40.0))) == 3
    assert _heads(session) == {1: (1, 10.0), 2: (2, 25.0), 4: (2, 40.0)}
    closed = session.scalars(select(MetricRow.subject_id).where(MetricRow.valid_to == 2)).all()
    assert sorted(closed) == [2, 3]
    assert _write(session, 3, _metrics((1, 10.0), (2, 25.0), (4, 40.0))) == 0  # idempotent


def test_write_replaces_heads_without_a_key_digest(session) -> None:
    """Rows written before key digests existed are rewritten once, then matched."""
    _write(session, 1, _metrics((1, 10.0), (2, 20.0)))
    session.execute(update(MetricRow).where(MetricRow.subject_id == 1).values(key_digest=None))
    # Written again, and the old row closed (counted apart: its key is not known).
    assert _write(session, 2, _metrics((1, 10.0), (2, 20.0))) == 2
    assert _heads(session) == {1: (2, 10.0), 2: (1, 20.0)}
    assert session.scalar(select(func.count()).where(MetricRow.key_digest.is_(None))) == 1
    assert _write(session, 3, _metrics((1, 10.0), (2, 20.0))) == 0
