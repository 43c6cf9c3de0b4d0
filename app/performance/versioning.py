"""Versioned result rows: write only what changed, read any version.

See ``app/performance/models.py`` for the scheme (``valid_from``/``valid_to``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
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


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, int | float):
        return math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    return bool(old == new)


def write(
    session: Session,
    model: VersionedModel,
    *,
    version: int,
    key: Sequence[str],
    rows: list[dict[str, Any]],
    scope: ColumnElement[bool],
) -> int:
    """Make the head rows within ``scope`` equal ``rows``; returns how many rows changed.

    Unchanged rows are left alone (their ``valid_from`` stays), changed ones are closed at
    ``version`` and re-inserted, and head rows no longer produced are closed.
    """
    fields = [f for f in (rows[0].keys() if rows else ()) if f not in key]
    cols = [model.id, *(getattr(model, k) for k in key), *(getattr(model, f) for f in fields)]
    head = {
        tuple(getattr(r, k) for k in key): r
        for r in session.execute(select(*cols).where(scope, model.valid_to.is_(None)))
    }
    inserts: list[dict[str, Any]] = []
    closes: list[int] = []
    for row in rows:
        old = head.pop(tuple(row[k] for k in key), None)
        if old is not None and all(_same(getattr(old, f), row[f]) for f in fields):
            continue
        if old is not None:
            closes.append(old.id)
        inserts.append({**row, "valid_from": version, "valid_to": None})
    removed = [r.id for r in head.values()]
    closes.extend(removed)
    for i in range(0, len(closes), CHUNK):
        session.execute(
            update(model).where(model.id.in_(closes[i : i + CHUNK])).values(valid_to=version)
        )
    for i in range(0, len(inserts), CHUNK * 10):
        session.execute(
            insert(model).execution_options(render_nulls=True), inserts[i : i + CHUNK * 10]
        )
    return len(inserts) + len(removed)


def purge(session: Session, *, keep_from_version: int) -> None:
    """Drop rows no retained snapshot can see, and the snapshots themselves."""
    for model in (PerformanceRow, MetricRow, CoachingRow):
        session.execute(
            delete(model).where(model.valid_to.is_not(None), model.valid_to <= keep_from_version)
        )
    session.execute(delete(Snapshot).where(Snapshot.id < keep_from_version))
