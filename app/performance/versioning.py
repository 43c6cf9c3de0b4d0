"""Versioned result rows: write only what changed, read any version.

See ``app/performance/models.py`` for the scheme (``valid_from``/``valid_to``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain
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

from app.performance.models import (
    CoachingRow,
    MetricRow,
    PerformanceRow,
    ReportedDriverRow,
    Snapshot,
)

VersionedModel = (
    type[PerformanceRow] | type[MetricRow] | type[CoachingRow] | type[ReportedDriverRow]
)
VERSIONED: tuple[VersionedModel, ...] = (PerformanceRow, MetricRow, CoachingRow, ReportedDriverRow)
CHUNK = 1000


def visible(model: VersionedModel, version: int) -> ColumnElement[bool]:
    return and_(
        model.valid_from <= version, or_(model.valid_to.is_(None), model.valid_to > version)
    )


def current_version(session: Session, *, computed_on: date | None = None) -> int | None:
    """The latest complete snapshot, or the latest one computed by the end of
    ``computed_on``."""
    stmt = select(Snapshot.id).where(Snapshot.status == "complete")
    # date.max has no next day (OverflowError): every snapshot was computed by its end.
    if computed_on is not None and computed_on < date.max:
        end = datetime.combine(computed_on + timedelta(days=1), time.min, UTC)
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


def _combine(hashes: Sequence[npt.NDArray[np.uint64]]) -> npt.NDArray[np.int64]:
    """Row hashes from column hashes, combined as ``pd.util.hash_pandas_object`` combines a
    frame's columns (so digests stored before this function existed still match)."""
    out = np.full(len(hashes[0]), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, h in enumerate(hashes):
        out ^= h
        out *= mult
        mult += np.uint64(82520 + 2 * (len(hashes) - i))
    out += np.uint64(97531)
    return out.view(np.int64)


def digests(frame: pd.DataFrame, columns: Sequence[str]) -> npt.NDArray[np.int64]:
    """A 64-bit hash per row of ``columns`` (in that order); equal figures, equal digests."""
    if not len(frame):
        return np.empty(0, dtype=np.int64)
    # Hashed column by column, not as a frame of the columns: building that frame cost as
    # much as the hashing (pandas turns each text column into a string array first).
    return _combine([pd.util.hash_array(_hashable(frame[c])) for c in columns])


def _integers(session: Session, stmt: ClauseElement, width: int) -> npt.NDArray[np.int64]:
    """The rows of a query of ``width`` integer columns, none null, as an (n, width) array,
    read through the driver's cursor: SQLAlchemy's Row objects cost more than the query
    itself for a scope's head rows."""
    session.flush()  # as session.execute would: the driver must see pending ORM changes
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width)
    return flat.reshape(len(rows), width)


def write(
    session: Session,
    model: VersionedModel,
    *,
    version: int,
    key: Sequence[str],
    frame: pd.DataFrame,
    fields: Sequence[str],
    build: Callable[[pd.DataFrame], dict[str, list[Any]]],
    scope: ColumnElement[bool],
) -> int:
    """Make the head rows within ``scope`` equal the rows of ``frame``; returns how many rows
    changed.

    A row is its ``key`` columns and its content, ``fields`` of ``frame``, compared through
    their :func:`digests` rather than the stored values: each row stores the digest of its
    key (``key_digest``) and of its key and content (``digest``). Unchanged rows are left
    alone (their ``valid_from`` stays), changed ones are closed at ``version`` and
    re-inserted (``build`` makes their database columns, name -> values, from the changed part
    of ``frame``), and head rows no longer produced are closed.
    """
    keys = digests(frame, key)
    # The row's digest hashes its key's with its content's (the key columns hashed once).
    digest = _combine([pd.util.hash_array(d) for d in (keys, digests(frame, fields))])
    # The heads' ids and digests. A null digest (0 here) is a head that never matches: there
    # are none since migration 0009 but in periods not recomputed since.
    head = _integers(
        session,
        select(model.id, func.coalesce(model.key_digest, 0), func.coalesce(model.digest, 0)).where(
            scope, model.valid_to.is_(None)
        ),
        3,
    )
    head_ids, head_keys, head_digest = head[:, 0], head[:, 1], head[:, 2]
    usable = (head_keys != 0) & (head_digest != 0)
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
    n = int(changed.sum())
    if n:
        columns = build(frame[changed])
        columns.update(
            valid_from=[version] * n,
            valid_to=[None] * n,
            key_digest=keys[changed].tolist(),
            digest=digest[changed].tolist(),
        )
        table = model.__table__
        assert isinstance(table, Table)
        _insert(session, table, columns)
    # Rows written, and heads closed without a successor (no longer produced).
    return n + len(closes) - int((found & changed).sum())


def _insert(session: Session, table: Table, columns: dict[str, list[Any]]) -> None:
    """Insert rows given as columns through the driver, their values converted a column at a
    time by each type's own bind processor, as Core would: Core's per-row bookkeeping cost as
    much as the inserts themselves (and the ORM's bulk insert several times that).

    SQLite: ``executemany`` of one INSERT. PostgreSQL: ``COPY ... FROM STDIN``, a third of
    the time of Core's multi-row INSERTs of the same rows. Other databases: Core.
    """
    conn = session.connection()
    names = list(columns)
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        rows = [dict(zip(names, v, strict=True)) for v in zip(*columns.values(), strict=True)]
        for i in range(0, len(rows), CHUNK * 10):
            session.execute(insert(table), rows[i : i + CHUNK * 10])
        return
    bound = []
    for name, values in columns.items():
        kind = table.c[name].type
        process = kind.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        bound.append(values if process is None else [process(v) for v in values])
    quote = conn.dialect.identifier_preparer.quote
    into = f"{quote(table.name)} ({', '.join(quote(n) for n in names)})"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if dialect == "postgresql":
            with cursor.copy(f"COPY {into} FROM STDIN") as copy:
                for row in zip(*bound, strict=True):
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(names))
            sql = f"INSERT INTO {into} VALUES ({marks})"  # noqa: S608 (quoted names)
            cursor.executemany(sql, zip(*bound, strict=True))
    finally:
        cursor.close()


def purge(session: Session, *, keep_from_version: int) -> None:
    """Drop rows no retained snapshot can see, and the snapshots themselves."""
    for model in VERSIONED:
        session.execute(
            delete(model).where(model.valid_to.is_not(None), model.valid_to <= keep_from_version)
        )
    session.execute(delete(Snapshot).where(Snapshot.id < keep_from_version))
