"""Data versions: every committed write bumps the version of the scopes it wrote.

    results  snapshots and their rows (a compute)
    records  deals, activities, reps, teams (syncs and imports)
    config   targets, sources, alert rules, webhooks, API keys
    ops      jobs, sync runs, quarantine, alerts, webhook deliveries

Writes are seen at the statement level (``after_cursor_execute`` on every engine made by
:func:`app.core.db.make_engine`), so ORM flushes, Core inserts and bulk upserts all count;
the bump happens inside the writing transaction (``before_commit``), so a reader never sees
new data under an old version. A code path that writes around the engine (a raw COPY) calls
:func:`touch`. :mod:`app.http.caching` turns the versions into ETags.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, String, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.base import Base, utcnow

SCOPES = ("results", "records", "config", "ops")
TABLE_SCOPES = {
    "snapshots": "results",
    "performance_rows": "results",
    "metric_rows": "results",
    "coaching_rows": "results",
    "deals": "records",
    "deal_stage_changes": "records",
    "activities": "records",
    "reps": "records",
    "rep_identities": "records",
    "teams": "records",
    "targets": "config",
    "sources": "config",
    "sync_cursors": "ops",
    "alert_rules": "config",
    "webhook_endpoints": "config",
    "api_keys": "config",
    "jobs": "ops",
    "sync_runs": "ops",
    "quarantined_records": "ops",
    "alerts": "ops",
    "webhook_deliveries": "ops",
    "webhook_attempts": "ops",
}
# Leases are renewed every few seconds and change nothing a reader sees; dirty days are
# bookkeeping written with the records they mark.
_WRITE = re.compile(
    r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+"?(\w+)"?', re.IGNORECASE | re.ASCII
)
_TOUCHED = "qg_touched_scopes"
NOTIFY_CHANNEL = "quotagap_versions"


class DataVersion(Base):
    __tablename__ = "data_versions"

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- recording writes


def _after_execute(
    conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
) -> None:
    match = _WRITE.match(statement)
    if match is None:
        return
    scope = TABLE_SCOPES.get(match.group(1).lower())
    if scope is not None:
        conn.info.setdefault(_TOUCHED, set()).add(scope)


def _forget(conn: Connection) -> None:
    conn.info.pop(_TOUCHED, None)


def install(engine: Engine) -> None:
    """Watch this engine's writes (idempotent)."""
    if not event.contains(engine, "after_cursor_execute", _after_execute):
        event.listen(engine, "after_cursor_execute", _after_execute)
        event.listen(engine, "rollback", _forget)
        event.listen(engine, "commit", _forget)


def touch(session: Session, *scopes: str) -> None:
    """Mark scopes written by something the statement hook cannot see (a raw COPY)."""
    session.connection().info.setdefault(_TOUCHED, set()).update(scopes)


@event.listens_for(Session, "before_commit")
def _bump(session: Session) -> None:
    if not session.in_transaction():
        return
    # before_commit runs before the commit's own flush: flush first, or changes still
    # pending in the session would be written after the bump and never counted.
    session.flush()
    conn = session.connection()
    touched = conn.info.pop(_TOUCHED, None)
    if not touched:
        return
    conn.execute(
        update(DataVersion)
        .where(DataVersion.scope.in_(sorted(touched)))
        .values(version=DataVersion.version + 1, changed_at=utcnow())
    )
    if conn.dialect.name == "postgresql":
        # Delivered at commit, to every worker's app.core.watch.CommitWatch.
        conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")


Versions = dict[str, tuple[int, datetime]]


def unrecorded(session: Session) -> bool:
    """Whether this session's connection sees writes of its own that no version counts yet.

    Never at the start of a request on a pooled connection (a commit or rollback clears
    them); a connection shared with uncommitted work (tests) can. The versions then do not
    describe what a read sees, so nothing may be answered from them (no 304, no cache).
    """
    return bool(session.connection().info.get(_TOUCHED))


def read_versions(session: Session) -> Versions:
    return {
        scope: (version, changed_at)
        for scope, version, changed_at in session.execute(
            select(DataVersion.scope, DataVersion.version, DataVersion.changed_at)
        )
    }
