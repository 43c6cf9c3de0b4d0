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
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
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
    count as a change; datetimes as day numbers (the job's dates are days); anything else as
    its text, None when missing."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        # Not as text: that costs a Python call per value.
        days = series.to_numpy(dtype="datetime64[D]")
        numbers: npt.NDArray[np.float64] = days.astype(np.int64).astype(np.float64)
        numbers[np.isnat(days)] = np.nan
        return numbers
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


def _raw_rows(session: Session, stmt: ClauseElement) -> list[tuple[Any, ...]]:
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
    their :func:`digests` rather than the stored values: each row stores the digest of its
    key (``key_digest``) and of its key and content (``digest``). Unchanged rows are left
    alone (their ``valid_from`` stays), changed ones are closed at ``version`` and
    re-inserted (``build`` makes their database rows from the changed part of ``frame``), and
    head rows no longer produced are closed.
    """
    keys = digests(frame, key)
    # The row's digest hashes its key's with its content's (the key columns hashed once).
    both = pd.DataFrame({"key": keys, "content": digests(frame, fields)})
    digest = pd.util.hash_pandas_object(both, index=False).to_numpy().view(np.int64)
    # The heads' ids and digests, as one integer array (a null digest is a head that never
    # matches: there are none since migration 0009 but in periods not recomputed since).
    rows = _raw_rows(
        session,
        select(
            model.id,
            func.coalesce(model.key_digest, 0),
            func.coalesce(model.digest, 0),
            model.key_digest.is_(None) | model.digest.is_(None),
        ).where(scope, model.valid_to.is_(None)),
    )
    head = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    head_ids, head_keys, head_digest = head[:, 0], head[:, 1], head[:, 2]
    usable = head[:, 3] == 0
    # Matched by a vectorised lookup of the key digests, not a loop over tuples; a key with
    # two heads (never written so) keeps its last one.
    keyed = pd.Index(head_keys)
    last = usable & ~keyed.duplicated(keep="last")
    at = pd.Index(head_keys[last]).get_indexer(pd.Index(keys))
    found = at >= 0
    same = np.zeros(len(frame), dtype=bool)
    same[found] = head_digest[last][at[found]] == digest[found]
    changed = ~same
    matched = np.zeros(len(head_ids), dtype=bool)
    matched[np.flatnonzero(last)[at[found & same]]] = True
    closes = head_ids[~matched].tolist()
    for i in range(0, len(closes), CHUNK):
        session.execute(
            update(model).where(model.id.in_(closes[i : i + CHUNK])).values(valid_to=version)
        )
    inserts = build(frame[changed]) if changed.any() else []
    for row, k, d in zip(inserts, keys[changed].tolist(), digest[changed].tolist(), strict=True):
        row.update(valid_from=version, valid_to=None, key_digest=k, digest=d)
    table = model.__table__
    assert isinstance(table, Table)
    _insert(session, table, inserts)
    # Rows written, and heads closed without a successor (no longer produced).
    return len(inserts) + len(closes) - int((found & changed).sum())


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        for i in range(0, len(rows), CHUNK * 10):
            # Core executemany (on PostgreSQL, batched into multi-row VALUES): the ORM's
            # bulk insert costs several times as much per row.
            session.execute(insert(table), rows[i : i + CHUNK * 10])
        return
    # SQLite: the driver's executemany on values converted a column at a time by each
    # type's own bind processor, as Core would (Core's per-row bookkeeping cost as much as
    # the inserts themselves).
    names = list(rows[0])
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        kind = table.c[name].type
        process = kind.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None:
            values = [process(v) for v in values]
        columns.append(values)
    quote = conn.dialect.identifier_preparer.quote
    marks = ", ".join("?" * len(names))
    into = f"{quote(table.name)} ({', '.join(quote(n) for n in names)})"
    sql = f"INSERT INTO {into} VALUES ({marks})"  # noqa: S608 (quoted table and column names)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, zip(*columns, strict=True))
    finally:
        cursor.close()


def purge(session: Session, *, keep_from_version: int) -> None:
    """Drop rows no retained snapshot can see, and the snapshots themselves."""
    for model in (PerformanceRow, MetricRow, CoachingRow):
        session.execute(
            delete(model).where(model.valid_to.is_not(None), model.valid_to <= keep_from_version)
        )
    session.execute(delete(Snapshot).where(Snapshot.id < keep_from_version))
