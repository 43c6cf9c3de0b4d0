"""Load storage into the DataFrames that ``analytics/`` consumes (the only I/O they need).

A full recompute reads millions of rows, so deals and activities are read with plain SQL on
the driver's own connection (the caller's transaction) and converted column-wise, chunk by
chunk, never kept as per-row Python objects:

* SQLite: the DB-API cursor, ``fetchmany`` in chunks; each chunk becomes typed arrays
  (timestamps parsed, code columns factorized) before the next one is fetched, so only one
  chunk of Python row objects exists at a time.
* PostgreSQL: ``COPY (SELECT ...) TO STDOUT (FORMAT csv, HEADER)`` streamed into
  ``pandas.read_csv`` in chunks. Timestamps travel as integer microseconds since the epoch
  and dates as integer days, so no date text is parsed.

Either way the frames are the same: ``created_at``, ``closed_at`` and ``occurred_at`` are
UTC-aware ``datetime64[us, UTC]``, ``close_date`` is naive ``datetime64[ns]``, ids are int64,
amounts and probabilities float64, ``is_deleted`` bool, text columns ``str`` (``object`` when
wholly missing). Callers may ask for fewer ``columns`` and, with ``categorical=True``, get the
low-cardinality code columns (``currency``, ``status``, ``type``) as ``category``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sqlalchemy import Connection, text

from app.activities.models import ACTIVITY_TYPES
from app.deals.models import DEAL_STATUSES

Kind = Literal["int", "float", "text", "code", "timestamp", "date", "bool"]

# Rows per chunk: bounds the Python objects alive at once (SQLite) and the parser's batches.
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class _Column:
    name: str  # in the frame
    source: str  # in the table
    kind: Kind
    # A code column's usual values: SQLite hands them over as small integers (cached
    # objects, not one new string per row) when the frame wants categories.
    known: tuple[str, ...] = ()


DEAL_COLUMNS = (
    _Column("deal_id", "id", "int"),
    _Column("external_id", "external_id", "text"),
    _Column("rep_id", "rep_id", "int"),
    _Column("amount", "amount", "float"),
    _Column("currency", "currency", "code"),
    _Column("status", "status", "code", DEAL_STATUSES),
    _Column("stage", "stage", "text"),
    _Column("probability", "probability", "float"),
    _Column("created_at", "created_at", "timestamp"),
    _Column("close_date", "close_date", "date"),
    _Column("closed_at", "closed_at", "timestamp"),
    _Column("is_deleted", "is_deleted", "bool"),
)
ACTIVITY_COLUMNS = (
    _Column("activity_id", "id", "int"),
    _Column("rep_id", "rep_id", "int"),
    _Column("type", "type", "code", ACTIVITY_TYPES),
    _Column("occurred_at", "occurred_at", "timestamp"),
    _Column("deal_external_id", "deal_external_id", "text"),
    _Column("is_deleted", "is_deleted", "bool"),
)
# Rep and team ids are read as floats (either may be NULL), then made Int64.
TARGET_COLUMNS = (
    _Column("target_id", "id", "int"),
    _Column("rep_id", "rep_id", "float"),
    _Column("team_id", "team_id", "float"),
    _Column("metric", "metric", "text"),
    _Column("period", "period", "text"),
    _Column("value", "value", "float"),
)


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="ISO8601").astype("datetime64[ns]")


def _start(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def _select(specs: Sequence[_Column], columns: Sequence[str] | None, table: str) -> list[_Column]:
    if columns is None:
        return list(specs)
    known = {c.name: c for c in specs}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)}")
    return [known[c] for c in dict.fromkeys(columns)]


# ------------------------------------------------------------------------- conversion


class _Chunks:
    """Typed column chunks, concatenated once at the end."""

    def __init__(self, columns: list[_Column], categorical: bool) -> None:
        self.columns = columns
        self.categorical = categorical
        self.parts: dict[str, list[Any]] = {c.name: [] for c in columns}

    def is_category(self, column: _Column) -> bool:
        return self.categorical and column.kind == "code"

    def add(self, column: _Column, values: Any) -> None:
        self.parts[column.name].append(values)

    def frame(self) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for column in self.columns:
            parts = self.parts.pop(column.name)
            data[column.name] = self._concat(column, parts)
        return pd.DataFrame(data)

    def _concat(self, column: _Column, parts: list[Any]) -> Any:
        kind = column.kind
        if self.is_category(column):
            if not parts:
                return pd.Categorical([])
            return union_categoricals(parts, sort_categories=True)
        if kind in ("text", "code"):
            values = np.concatenate(parts) if parts else np.empty(0, dtype=object)
            # Inferred as from the driver's values: str, or object when wholly missing.
            return pd.Series(values)
        empty = {
            "int": np.empty(0, dtype=np.int64),
            "float": np.empty(0, dtype=np.float64),
            "bool": np.empty(0, dtype=bool),
            "date": np.empty(0, dtype="datetime64[ns]"),
            "timestamp": pd.DatetimeIndex([], dtype="datetime64[us, UTC]"),
        }[kind]
        if not parts:
            return empty
        if kind == "timestamp":
            micros = np.concatenate([p.asi8 for p in parts])
            return pd.DatetimeIndex(micros.view("datetime64[us]")).tz_localize("UTC")
        return np.concatenate(parts)


def _category(values: Any, known: tuple[str, ...] = ()) -> Any:
    """Codes of one chunk; categories sorted (so chunks union in a stable order). Integers
    stand for the ``known`` value at that position (the query's CASE): see :func:`_source`."""
    codes, uniques = pd.factorize(values)
    labels = [known[u] if isinstance(u, int) else u for u in uniques]
    categories: Any = pd.Index(labels)  # str, as read_csv makes them
    order = categories.argsort()
    recode = np.empty(len(order) + 1, dtype=np.int64)
    recode[order] = np.arange(len(order))
    recode[-1] = -1  # missing stays missing
    return pd.Categorical.from_codes(recode[codes], categories=categories[order])


def _timestamps(values: Any) -> pd.DatetimeIndex:
    """ISO text (naive, UTC) -> ``datetime64[us, UTC]``."""
    parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    return pd.DatetimeIndex(parsed).as_unit("us")


def _sqlite_chunk(chunks: _Chunks, rows: list[tuple[Any, ...]]) -> None:
    n = len(rows)
    for i, column in enumerate(chunks.columns):
        # One pass of C iteration per column: no per-row Python code, no transposed copy.
        values = map(itemgetter(i), rows)
        kind = column.kind
        if kind == "int":
            chunks.add(column, np.fromiter(values, dtype=np.int64, count=n))
        elif kind == "float":
            chunks.add(column, np.array(list(values), dtype=np.float64))  # None -> NaN
        elif kind == "bool":
            chunks.add(column, np.fromiter(values, dtype=np.int64, count=n).astype(bool))
        else:
            objects = np.fromiter(values, dtype=object, count=n)
            if chunks.is_category(column):
                chunks.add(column, _category(objects, column.known))
            elif kind in ("text", "code"):
                chunks.add(column, objects)
            elif kind == "timestamp":
                chunks.add(column, _timestamps(objects))
            else:
                dates = pd.to_datetime(objects, format="ISO8601")
                chunks.add(column, np.asarray(dates.astype("datetime64[ns]")))


def _read_sqlite(
    conn: Connection, columns: list[_Column], sql: str, params: list[Any], categorical: bool
) -> pd.DataFrame:
    chunks = _Chunks(columns, categorical)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            _sqlite_chunk(chunks, rows)
    finally:
        cursor.close()
    return chunks.frame()


class _CopyStream(io.RawIOBase):
    """The rows of a psycopg ``COPY ... TO STDOUT`` as a binary file, for ``read_csv``."""

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self._pending = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._offset >= len(self._pending):
            # COPY hands over one row per message: gather a buffer's worth of them.
            parts: list[Any] = []
            size = 0
            while size < len(view):
                data = self._copy.read()
                if not data:
                    break
                parts.append(data)
                size += len(data)
            self._pending = b"".join(parts)
            self._offset = 0
        n = min(len(view), len(self._pending) - self._offset)
        view[:n] = self._pending[self._offset : self._offset + n]
        self._offset += n
        return n


def _source(column: _Column, categorical: bool) -> str:
    """The SQLite expression of a column: a code column with known values, read as
    categories, gives each known value's position instead of the text (others as they are)."""
    if not (categorical and column.kind == "code" and column.known):
        return column.source
    cases = " ".join(f"WHEN '{value}' THEN {i}" for i, value in enumerate(column.known))
    return f"CASE {column.source} {cases} ELSE {column.source} END"


_NULL = r"\N"


def _pg_expression(column: _Column) -> str:
    name = column.source
    if column.kind == "timestamp":
        return f"(extract(epoch FROM {name}) * 1000000)::bigint"
    if column.kind == "date":
        return f"({name} - DATE '1970-01-01')"
    if column.kind == "bool":
        return f"{name}::int"
    return name


def _read_postgresql(
    conn: Connection, columns: list[_Column], sql: str, params: list[Any], categorical: bool
) -> pd.DataFrame:
    chunks = _Chunks(columns, categorical)
    dtypes: dict[str, Any] = {}
    for column in columns:
        if chunks.is_category(column):
            dtypes[column.name] = "category"
        elif column.kind in ("text", "code"):
            dtypes[column.name] = object
        elif column.kind in ("int", "timestamp", "date"):
            dtypes[column.name] = "Int64"
        elif column.kind == "bool":
            dtypes[column.name] = "int8"
        else:
            dtypes[column.name] = "float64"
    copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER, NULL '{_NULL}')"
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(copy_sql, params) as copy:  # type: ignore[union-attr]
        stream = io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20)
        reader = pd.read_csv(
            stream,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[_NULL],
            chunksize=CHUNK_ROWS * 4,
        )
        for chunk in reader:
            _pg_chunk(chunks, chunk)
    return chunks.frame()


def _pg_chunk(chunks: _Chunks, chunk: pd.DataFrame) -> None:
    for column in chunks.columns:
        values = chunk[column.name]
        kind = column.kind
        if chunks.is_category(column):
            chunks.add(column, values.array)
        elif kind in ("text", "code"):
            objects = values.to_numpy(dtype=object, copy=True)
            objects[values.isna().to_numpy()] = None
            chunks.add(column, objects)
        elif kind == "int":
            chunks.add(column, values.to_numpy(dtype=np.int64))
        elif kind == "float":
            chunks.add(column, values.to_numpy(dtype=np.float64))
        elif kind == "bool":
            chunks.add(column, values.to_numpy().astype(bool))
        elif kind == "timestamp":
            micros = values.to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).min)
            chunks.add(column, pd.DatetimeIndex(micros.view("datetime64[us]")).tz_localize("UTC"))
        else:
            days = values.to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).min)
            chunks.add(column, days.view("datetime64[D]").astype("datetime64[ns]"))


def _read(
    conn: Connection,
    table: str,
    columns: list[_Column],
    where: list[tuple[str, list[Any]]],
    categorical: bool,
) -> pd.DataFrame:
    """``SELECT columns FROM table WHERE ...``: ``where`` holds conditions written with ``?``
    placeholders and their values (already bound as the dialect stores them)."""
    postgresql = conn.dialect.name == "postgresql"
    exprs = [
        f"{_pg_expression(c) if postgresql else _source(c, categorical)} AS {c.name}"
        for c in columns
    ]
    conditions = " AND ".join(f"({condition})" for condition, _ in where)
    params = [value for _, values in where for value in values]
    sql = f"SELECT {', '.join(exprs)} FROM {table} WHERE {conditions}"  # noqa: S608 (fixed names)
    if postgresql:
        return _read_postgresql(conn, columns, sql.replace("?", "%s"), params, categorical)
    if conn.dialect.name == "sqlite":
        return _read_sqlite(conn, columns, sql, params, categorical)
    return _read_generic(conn, columns, sql, params, categorical)


def _read_generic(
    conn: Connection, columns: list[_Column], sql: str, params: list[Any], categorical: bool
) -> pd.DataFrame:
    """Any other dialect: one query through SQLAlchemy, converted like the SQLite chunks."""
    names = {f"p{i}": value for i, value in enumerate(params)}
    marks = iter(names)
    bound = "".join(f":{next(marks)}" if ch == "?" else ch for ch in sql)
    chunks = _Chunks(columns, categorical)
    rows = [tuple(r) for r in conn.execute(text(bound), names)]
    if rows:
        _sqlite_chunk(chunks, rows)
    return chunks.frame()


def _bound(conn: Connection, value: date) -> Any:
    """A date or UTC datetime as the dialect compares it: SQLite stores naive UTC text."""
    if conn.dialect.name != "sqlite":
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat()


def _in_reps(reps: Sequence[int] | None) -> list[tuple[str, list[Any]]]:
    if reps is None:
        return []
    ids = sorted({int(r) for r in reps})
    return [(f"rep_id IN ({', '.join('?' * len(ids))})" if ids else "1 = 0", ids)]


def deals_frame(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    status: str | None = None,
    deleted: bool | None = None,
    reps: Sequence[int] | None = None,
    closing: tuple[date, date] | None = None,
    closing_or_created: tuple[date, date] | None = None,
    changed: bool = False,
    columns: Sequence[str] | None = None,
    categorical: bool = False,
) -> pd.DataFrame:
    """Deals created or closing within [since, until] (every deal when unbounded).

    Narrower selections, each optional: ``status``; ``deleted`` (the flag); ``reps`` (only
    these rep ids); ``closing`` (``close_date`` within [lo, hi]); ``closing_or_created``
    (``close_date`` within [lo, hi], or ``created_at`` from lo's UTC midnight to hi's end);
    ``changed`` (only deals with a ``deal_changes`` row: changed since the last compute).

    ``columns``: only these (of ``deal_id, external_id, rep_id, amount, currency, status,
    stage, probability, created_at, close_date, closed_at, is_deleted``); ``categorical``:
    ``currency`` and ``status`` as ``category``.
    """
    where: list[tuple[str, list[Any]]] = [("rep_id IS NOT NULL", [])]
    if status is not None:
        where.append(("status = ?", [status]))
    if deleted is not None:
        where.append(("is_deleted = ?", [deleted]))
    where += _in_reps(reps)
    if since is not None:
        where.append(
            (
                "close_date >= ? OR created_at >= ?",
                [_bound(conn, since), _bound(conn, _start(since))],
            )
        )
    if until is not None:
        after = _start(until + timedelta(days=1))
        where.append(
            ("close_date <= ? OR created_at < ?", [_bound(conn, until), _bound(conn, after)])
        )
    if closing is not None:
        lo, hi = closing
        where.append(("close_date >= ? AND close_date <= ?", [_bound(conn, lo), _bound(conn, hi)]))
    if closing_or_created is not None:
        lo, hi = closing_or_created
        where.append(
            (
                "close_date >= ? AND close_date <= ? OR created_at >= ? AND created_at < ?",
                [
                    _bound(conn, lo),
                    _bound(conn, hi),
                    _bound(conn, _start(lo)),
                    _bound(conn, _start(hi + timedelta(days=1))),
                ],
            )
        )
    if changed:
        # Driven by the few changes, each probing the (source_id, external_id) index: as a
        # row-value IN, SQLite walks every deal of the source instead.
        where.append(
            (
                "id IN (SELECT d.id FROM deal_changes c JOIN deals d"
                " ON d.source_id = c.source_id AND d.external_id = c.external_id)",
                [],
            )
        )
    selected = _select(DEAL_COLUMNS, columns, "deals")
    return _read(conn, "deals", selected, where, categorical)


# A deal_changes row names its deal's id deal_id; its other columns are the deal's.
_BEFORE_COLUMNS = tuple(
    _Column("deal_id", "deal_id", "int") if c.name == "deal_id" else c
    for c in DEAL_COLUMNS
    if c.name not in ("external_id", "stage", "probability")
)


def deal_befores_frame(
    conn: Connection, *, columns: Sequence[str] | None = None, categorical: bool = False
) -> pd.DataFrame:
    """The before images of the changed deals (``deal_changes`` of deals that existed at the
    last compute, with a rep), as :func:`deals_frame` gives deals."""
    where: list[tuple[str, list[Any]]] = [("existed = ?", [True]), ("rep_id IS NOT NULL", [])]
    selected = _select(_BEFORE_COLUMNS, columns, "deal_changes")
    return _read(conn, "deal_changes", selected, where, categorical)


def activities_frame(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    reps: Sequence[int] | None = None,
    columns: Sequence[str] | None = None,
    categorical: bool = False,
) -> pd.DataFrame:
    """Activities that occurred within [since, until] (every one when unbounded), of the
    ``reps`` only when given.

    ``columns``: only these (of ``activity_id, rep_id, type, occurred_at, deal_external_id,
    is_deleted``); ``categorical``: ``type`` as ``category``.
    """
    where: list[tuple[str, list[Any]]] = [("rep_id IS NOT NULL", [])]
    where += _in_reps(reps)
    if since is not None:
        where.append(("occurred_at >= ?", [_bound(conn, _start(since))]))
    if until is not None:
        where.append(("occurred_at < ?", [_bound(conn, _start(until + timedelta(days=1)))]))
    selected = _select(ACTIVITY_COLUMNS, columns, "activities")
    return _read(conn, "activities", selected, where, categorical)


def reps_frame(conn: Connection) -> pd.DataFrame:
    frame = pd.read_sql_query(
        text(
            "SELECT id AS rep_id, name, team_id, manager_id, role, is_active, start_date FROM reps"
        ),
        conn,
    )
    frame["start_date"] = _dates(frame["start_date"])
    frame["team_id"] = frame["team_id"].astype("Int64")
    frame["manager_id"] = frame["manager_id"].astype("Int64")
    frame["is_active"] = frame["is_active"].astype(bool)
    return frame


def teams_frame(conn: Connection) -> pd.DataFrame:
    frame = pd.read_sql_query(
        text("SELECT id AS team_id, name, manager_id, parent_id FROM teams"), conn
    )
    frame["manager_id"] = frame["manager_id"].astype("Int64")
    frame["parent_id"] = frame["parent_id"].astype("Int64")
    return frame


def memberships_frame(conn: Connection) -> pd.DataFrame:
    """Team membership spans: ``rep_id, team_id, valid_from, valid_to`` (dates, NaT open)."""
    frame = pd.read_sql_query(
        text("SELECT rep_id, team_id, valid_from, valid_to FROM team_memberships"), conn
    )
    for c in ("valid_from", "valid_to"):
        frame[c] = _dates(frame[c])
    frame["rep_id"] = frame["rep_id"].astype("int64")
    frame["team_id"] = frame["team_id"].astype("int64")
    return frame


def targets_frame(conn: Connection, *, periods: list[str] | None = None) -> pd.DataFrame:
    where: list[tuple[str, list[Any]]] = [("1 = 1", [])]
    if periods is not None:
        # Filtered by the database: an incremental compute wants a few of many periods.
        labels = sorted(set(periods))
        where = [(f"period IN ({', '.join('?' * len(labels))})" if labels else "1 = 0", labels)]
    frame = _read(conn, "targets", list(TARGET_COLUMNS), where, categorical=False)
    frame["rep_id"] = frame["rep_id"].astype("Int64")
    frame["team_id"] = frame["team_id"].astype("Int64")
    return frame
