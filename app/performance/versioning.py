"""Versioned result rows: write only what changed, read any version.

See ``app/performance/models.py`` for the scheme (``valid_from``/``valid_to``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import ColumnElement, Select, Table, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from app.performance.models import CoachingRow, MetricRow, PerformanceRow, Snapshot

VersionedModel = type[PerformanceRow] | type[MetricRow] | type[CoachingRow]
CHUNK = 1000


def visible(model: VersionedModel, version: int) -> ColumnElement[bool]:
    return and_(
        model.valid_from <= version, or_(model.valid_to.is_(None), model.valid_to > version)
    )


def current_version(session: Session, *, as_of: date | None = None) -> int | None:
    """The latest complete snapshot, or the latest one computed by the end of ``as_of``."""
    stmt = select(Snapshot.id).where(Snapshot.status == "complete")
    if as_of is not None:
        end = datetime.combine(as_of + timedelta(days=1), time.min, UTC)
        stmt = stmt.where(Snapshot.computed_at < end)
    return session.scalar(stmt.order_by(Snapshot.id.desc()).limit(1))


def clean(value: Any) -> Any:
    """JSON- and database-safe values: NaN becomes None, numpy scalars become Python."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


_QUANTUM = np.uint64(~((1 << 20) - 1) & ((1 << 64) - 1))


_NUMERIC_INFERRED = frozenset({"integer", "floating", "mixed-integer-float", "boolean"})


def _hashable(series: pd.Series) -> npt.NDArray[Any]:
    """One column as a digest sees it: numbers (of any dtype) as float64 rounded to about
    1e-10 relative, so float noise between two computations of the same figure does not
    count as a change; anything else as its text, None when missing."""
    dtype = series.dtype
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        # Numbers held as objects (a column assembled from several frames) are numbers.
        numeric = inferred in _NUMERIC_INFERRED
    else:
        numeric = pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    if numeric:
        values = series.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        out: npt.NDArray[Any] = (values.view(np.uint64) & _QUANTUM).view(np.float64)
        return out
    missing = pd.isna(series).to_numpy()
    if inferred in ("string", "empty"):
        text = series.to_numpy(dtype=object, copy=True)
    else:
        texts: dict[Any, str] = {}
        text = np.array(
            [
                texts[v] if v in texts else texts.setdefault(v, str(clean(v)))
                for v in series.tolist()
            ],
            dtype=object,
        )
    text[missing] = None
    return text


def digests(frame: pd.DataFrame, columns: Sequence[str]) -> npt.NDArray[np.int64]:
    """A 64-bit hash per row of ``columns`` (in that order); equal figures, equal digests."""
    if not len(frame):
        return np.empty(0, dtype=np.int64)
    parts = pd.DataFrame({f"c{i}": _hashable(frame[c]) for i, c in enumerate(columns)})
    hashed: npt.NDArray[np.int64] = (
        pd.util.hash_pandas_object(parts, index=False).to_numpy().view(np.int64)
    )
    return hashed


def _key_values(series: pd.Series) -> list[Any]:
    """Key values as the database returns them: ints for ids, None for missing."""
    missing = pd.isna(series).to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype) or (
        series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "integer"
    ):
        numbers = series.to_numpy(dtype="float64", na_value=np.nan)
        ints = np.where(missing, 0, numbers).astype(np.int64).tolist()
        return [None if m else v for v, m in zip(ints, missing.tolist(), strict=True)]
    values = series.to_numpy(dtype=object)
    return [None if m else v for v, m in zip(values.tolist(), missing.tolist(), strict=True)]


def _raw_rows(session: Session, stmt: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query of plain columns (ids, text, integers) as the driver's tuples:
    SQLAlchemy's Row objects cost more than the query itself for a scope's head rows."""
    session.flush()  # as session.execute would: the driver must see pending ORM changes
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled))
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    finally:
        cursor.close()
    return rows


def write(
    session: Session,
    model: VersionedModel,
    *,
    version: int,
    key: Sequence[str],
    frame: pd.DataFrame,
    fields: Sequence[str],
    build: Callable[[pd.DataFrame], list[dict[str, Any]]],
    scope: ColumnElement[bool],
) -> int:
    """Make the head rows within ``scope`` equal the rows of ``frame``; returns how many rows
    changed.

    A row is its ``key`` columns and its content, ``fields`` of ``frame``, compared through
    their :func:`digests` (stored with each row) rather than the stored values. Unchanged
    rows are left alone (their ``valid_from`` stays), changed ones are closed at ``version``
    and re-inserted (``build`` makes their database rows from the changed part of ``frame``),
    and head rows no longer produced are closed.
    """
    digest = digests(frame, [*key, *fields])
    keys = list(zip(*(_key_values(frame[k]) for k in key), strict=True))
    cols = [model.id, model.digest, *(getattr(model, k) for k in key)]
    head = {
        tuple(r[2:]): (r[0], r[1])
        for r in _raw_rows(session, select(*cols).where(scope, model.valid_to.is_(None)))
    }
    changed = np.zeros(len(frame), dtype=bool)
    closes: list[int] = []
    for i, (k, d) in enumerate(zip(keys, digest.tolist(), strict=True)):
        old = head.pop(k, None)
        if old is not None and old[1] == d:
            continue
        changed[i] = True
        if old is not None:
            closes.append(old[0])
    removed = [row_id for row_id, _ in head.values()]
    closes.extend(removed)
    for i in range(0, len(closes), CHUNK):
        session.execute(
            update(model).where(model.id.in_(closes[i : i + CHUNK])).values(valid_to=version)
        )
    inserts = build(frame[changed]) if changed.any() else []
    for row, d in zip(inserts, digest[changed].tolist(), strict=True):
        row.update(valid_from=version, valid_to=None, digest=d)
    table = model.__table__
    assert isinstance(table, Table)
    for i in range(0, len(inserts), CHUNK * 10):
        # Core executemany: the ORM's bulk insert costs several times as much per row.
        session.execute(insert(table), inserts[i : i + CHUNK * 10])
    return len(inserts) + len(removed)


def purge(session: Session, *, keep_from_version: int) -> None:
    """Drop rows no retained snapshot can see, and the snapshots themselves."""
    for model in (PerformanceRow, MetricRow, CoachingRow):
        session.execute(
            delete(model).where(model.valid_to.is_not(None), model.valid_to <= keep_from_version)
        )
    session.execute(delete(Snapshot).where(Snapshot.id < keep_from_version))
