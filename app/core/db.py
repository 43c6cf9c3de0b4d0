"""Engines and sessions: SQLite tuned for a service (WAL, busy timeout, up-front write
locks), every write counted in the data versions (:mod:`app.core.versions`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core import versions

log = logging.getLogger(__name__)
T = TypeVar("T")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_dumps(value: Any) -> str:
    """JSON columns' serializer: orjson is about nine times as fast as ``json.dumps`` on the
    result rows' dicts (a compute writes thousands), writes NaN as null (valid JSON, where
    ``json.dumps`` writes ``NaN``, which PostgreSQL's jsonb rejects) and takes numpy
    scalars."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite a writer waits up to ``busy_timeout_ms`` for the
    write lock (then the request answers 503, :mod:`app.core.exceptions`)."""
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms))
        # pysqlite's own transaction handling skips BEGIN before SAVEPOINTs and DDL; let
        # SQLAlchemy emit it so transactions and savepoints behave as on PostgreSQL.
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    versions.install(engine)  # every write bumps its data version (ETags, app.http.caching)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_timeout_ms: int) -> None:
    # WAL lets the API read while a sync or recompute writes; foreign keys are off by default.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that later writes fails at once with "database is locked" when
    # another connection is writing (SQLite refuses the upgrade to avoid a deadlock, whatever
    # the busy timeout). Writers therefore take the write lock up front and queue on the busy
    # timeout; read-only work (the API's GETs) keeps deferred BEGINs, which WAL never blocks.
    read_only = conn.get_execution_options().get("read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


# PostgreSQL's "try the transaction again" errors: deadlock detected, serialization failure.
_CONFLICTS = {"40P01", "40001"}
CONFLICT_ATTEMPTS = 3


def retry_conflicts(work: Callable[[], T], *, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """``work()`` (a whole transaction), run again when the database aborted it for a deadlock
    or a serialization conflict: at most ``attempts`` times, after 0.1, 0.2 s... The lock
    order (``app.performance.marks``) prevents the deadlocks we know; this covers the rest."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code not in _CONFLICTS or attempt == attempts - 1:
                raise
            log.warning("transaction aborted (%s), trying again: %s", code, exc.orig)
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


# A write that must not be lost to a short outage (a run's or a job's outcome): tried again
# after 0.5, 1, 2... s, about a minute in all, before giving up.
OUTAGE_ATTEMPTS = 7


def retry_while_unavailable(
    work: Callable[[], T], *, what: str, attempts: int = OUTAGE_ATTEMPTS
) -> T:
    """``work()``, run again while the database is unreachable (``OperationalError``)."""
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("%s not written yet (%s): trying again", what, exc.orig)
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")
