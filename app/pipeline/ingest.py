"""Idempotent writes of source records: upsert by (source, external id), quarantine the rest.

Shared by CSV imports and the CRM sync engine, so both count inserted/updated/unchanged the
same way and neither ever writes a row twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import String, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from analytics.periods import periods_between
from app.activities.models import Activity
from app.core.base import utcnow
from app.core.config import Settings
from app.deals.models import Deal
from app.performance.marks import lock_for_changes, mark_dirty
from app.performance.models import ANY_REP, DealChange
from app.sources.models import QuarantinedRecord

BATCH = 1000
# The dates that decide which periods a record counts in (see analytics/metrics.py).
DATE_FIELDS: dict[type[Any], tuple[str, ...]] = {
    Deal: ("created_at", "close_date", "closed_at"),
    Activity: ("occurred_at",),
}
ANALYZE_AFTER = 10_000
# The fields of a deal that decide its figures: a DealChange keeps them as they were.
BEFORE_FIELDS = (
    "rep_id",
    "amount",
    "currency",
    "status",
    "created_at",
    "close_date",
    "closed_at",
    "is_deleted",
)


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # records newly flagged deleted (by an insert or an update)
    earliest: date | None = None  # the earliest day whose figures the changes moved

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.earliest = earliest(self.earliest, other.earliest)


def earliest(*days: date | None) -> date | None:
    return min((d for d in days if d is not None), default=None)


def horizon_notice(settings: Settings, first_day: date | None) -> str | None:
    """What an import or sync says when it changed records before the compute's history
    horizon: their periods are computed only where they have a target, and what to run to
    compute them all."""
    today = settings.today()
    start = settings.history_start(today)
    if first_day is None or first_day >= start:
        return None
    cal = settings.calendar
    months = len(periods_between(first_day, today, "month", cal))
    return (
        f"records dated from {first_day} are before the compute's history horizon ({start}, "
        f"QG_HISTORY_MONTHS={settings.history_months}): their periods are computed only where "
        f"they have a target. To compute every period back to {first_day}, set "
        f"QG_HISTORY_MONTHS={months} and run `quotagap compute --full`."
    )


def upsert_records(
    session: Session,
    model: type[Deal] | type[Activity],
    source_id: int,
    records: Sequence[dict[str, Any]],
) -> UpsertCounts:
    """Insert new records, update changed ones, leave identical ones untouched.

    Each record holds the model's columns (without ``id``, ``source_id``, ``synced_at``).
    Comparison is field by field, so re-sending the same data writes nothing. Records with the
    same external id later in ``records`` win (a CRM page can repeat a record).
    """
    counts = UpsertCounts()
    unanalyzed = 0
    dirty: set[tuple[date, int]] = set()
    date_fields = [f for f in DATE_FIELDS[model] if not records or f in records[0]]
    latest = {r["external_id"]: r for r in records}
    items = list(latest.values())
    fields = [k for k in items[0] if k != "external_id"] if items else []
    tracked = model is Deal
    read = [*fields, *(f for f in BEFORE_FIELDS if tracked and f not in fields)]
    for i in range(0, len(items), BATCH):
        chunk = items[i : i + BATCH]
        cols = [model.id, model.external_id, *(getattr(model, f) for f in read)]
        wanted = [r["external_id"] for r in chunk]
        existing = {
            row.external_id: row
            for row in session.execute(_existing(session, model, cols, source_id, wanted))
        }
        now = utcnow()
        new = [
            {**r, "source_id": source_id, "synced_at": now}
            for r in chunk
            if r["external_id"] not in existing
        ]
        changed = []
        befores: dict[str, dict[str, Any]] = {}
        for r in chunk:
            old = existing.get(r["external_id"])
            if old is None:
                _collect_days(dirty, r, date_fields, _rep_of(r, fields))
                counts.deleted += bool(r.get("is_deleted"))
                if tracked:
                    befores[r["external_id"]] = {"existed": False}
                continue
            if any(_differs(getattr(old, f), r[f]) for f in fields):
                changed.append({**r, "id": old.id, "synced_at": now})
                if tracked:
                    befores[r["external_id"]] = {
                        "existed": True,
                        "deal_id": old.id,
                        **{f: getattr(old, f) for f in BEFORE_FIELDS},
                    }
                counts.deleted += bool(r.get("is_deleted")) and not getattr(old, "is_deleted", True)
                _collect_days(dirty, r, date_fields, _rep_of(r, fields))
                before = {f: getattr(old, f) for f in {*date_fields, "rep_id"} & {*fields}}
                _collect_days(dirty, before, date_fields, _rep_of(before, fields))
            else:
                counts.unchanged += 1
        if new:
            # Core, not the ORM's bulk insert: the rows are plain dicts already, and the ORM's
            # per-row bookkeeping cost more than the INSERT itself.
            session.execute(insert(cast(Table, model.__table__)), new)
        if changed:
            session.execute(update(model), changed)
        record_changes(session, source_id, befores)
        counts.inserted += len(new)
        counts.updated += len(changed)
        unanalyzed += len(new)
        if unanalyzed >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
            # A big load inside one transaction leaves the planner thinking the table is
            # empty, and it then seq-scans it for every lookup above (seconds per batch).
            # PostgreSQL's own advice for bulk loads: ANALYZE (it sees our uncommitted rows).
            session.execute(text(f"ANALYZE {model.__tablename__}"))
            unanalyzed = 0
    mark_dirty(session, dirty, kind="deal" if model is Deal else "activity")
    counts.earliest = earliest(*(d for d, _ in dirty))
    return counts


def _rep_of(record: dict[str, Any], fields: Sequence[str]) -> int | None:
    """The rep whose figures the record counts in: None for none (a record without a rep
    counts nowhere), ANY_REP when the record does not say."""
    if "rep_id" not in fields:
        return ANY_REP
    rep = record.get("rep_id")
    return None if rep is None or pd.isna(rep) else int(rep)


def _existing(
    session: Session,
    model: type[Deal] | type[Activity],
    cols: list[Any],
    source_id: int,
    external_ids: list[str],
) -> Any:
    """The stored rows among ``external_ids``, as a query."""
    if session.get_bind().dialect.name != "postgresql":
        return select(*cols).where(
            model.source_id == source_id, model.external_id.in_(external_ids)
        )
    # PostgreSQL plans an IN list from the table's statistics, which a load outdates at once:
    # believing the source has few rows, it reads all of them and filters by the list (0.7 s
    # per 1,000 ids at 30k rows, growing with the table). Joined as a set, the ids probe the
    # unique index one by one whatever the statistics say.
    ids = func.unnest(bindparam("external_ids", external_ids, type_=ARRAY(String)))
    wanted = ids.table_valued("external_id").render_derived(name="wanted")
    return (
        select(*cols)
        .join(wanted, model.external_id == wanted.c.external_id)
        .where(model.source_id == source_id)
    )


def _collect_days(
    out: set[tuple[date, int]], record: dict[str, Any], fields: Sequence[str], rep: int | None
) -> None:
    if rep is None:
        return
    for field in fields:
        value = record.get(field)
        if isinstance(value, datetime):
            out.add((value.astimezone(UTC).date(), rep))
        elif isinstance(value, date):
            out.add((value, rep))


def record_changes(session: Session, source_id: int, befores: dict[str, dict[str, Any]]) -> None:
    """A DealChange for each deal (by external id) without one: the first change since the
    last compute keeps its before image (see DealChange)."""
    if not befores:
        return
    lock_for_changes(session)  # the one lock order: see app.performance.marks
    now = utcnow()
    rows = [
        {**dict.fromkeys(("deal_id", *BEFORE_FIELDS)), **before}
        | {"source_id": source_id, "external_id": external_id, "marked_at": now}
        for external_id, before in befores.items()
    ]
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        into = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(into(DealChange).on_conflict_do_nothing(), rows)
        return
    present = set(
        session.scalars(
            select(DealChange.external_id).where(
                DealChange.source_id == source_id, DealChange.external_id.in_(list(befores))
            )
        )
    )
    missing = [r for r in rows if r["external_id"] not in present]
    if missing:
        session.execute(insert(DealChange), missing)


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, int | float):
        return abs(old - new) > 1e-9
    return bool(old != new)


def _usable_id(external_id: str | None) -> str | None:
    ok = external_id and len(external_id) <= 200 and external_id.isprintable()
    return external_id if ok else None


def record_key(external_id: str | None, payload: dict[str, Any]) -> str:
    """The quarantine key: the record's id, or a hash of its payload (and of an id that is no
    usable key: too long, or holding control characters)."""
    usable = _usable_id(external_id)
    if usable:
        return usable
    raw = json.dumps([external_id, payload], sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:56]


def _storable(value: Any) -> Any:
    """Hostile payloads are kept as received, except NUL, which PostgreSQL text and JSONB
    refuse: it becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def quarantine(
    session: Session,
    source_id: int,
    object_type: str,
    items: Sequence[tuple[str | None, str, dict[str, Any]]],
) -> int:
    """Keep (external id, reason, raw payload) of records that could not be mapped.

    Idempotent: the same record quarantined again refreshes its reason and ``last_seen_at``.
    """
    now = utcnow()
    by_key = {record_key(ext, payload): (ext, reason, payload) for ext, reason, payload in items}
    keys = list(by_key)
    for i in range(0, len(keys), BATCH):
        chunk = keys[i : i + BATCH]
        existing = {
            key: id_
            for key, id_ in session.execute(
                select(QuarantinedRecord.record_key, QuarantinedRecord.id).where(
                    QuarantinedRecord.source_id == source_id,
                    QuarantinedRecord.object_type == object_type,
                    QuarantinedRecord.record_key.in_(chunk),
                )
            )
        }
        new = [
            {
                "source_id": source_id,
                "object_type": object_type,
                "external_id": _usable_id(by_key[k][0]),
                "record_key": k,
                "reason": _storable(by_key[k][1]),
                "payload": _storable(by_key[k][2]),
                "created_at": now,
                "last_seen_at": now,
            }
            for k in chunk
            if k not in existing
        ]
        seen = [
            {
                "id": existing[k],
                "reason": _storable(by_key[k][1]),
                "payload": _storable(by_key[k][2]),
                "last_seen_at": now,
            }
            for k in chunk
            if k in existing
        ]
        if new:
            session.execute(insert(QuarantinedRecord).execution_options(render_nulls=True), new)
        if seen:
            session.execute(update(QuarantinedRecord), seen)
    return len(by_key)


def release(
    session: Session, source_id: int, object_type: str, external_ids: Sequence[str]
) -> None:
    """Records that now load cleanly leave quarantine."""
    for i in range(0, len(external_ids), BATCH):
        session.execute(
            delete(QuarantinedRecord).where(
                QuarantinedRecord.source_id == source_id,
                QuarantinedRecord.object_type == object_type,
                QuarantinedRecord.record_key.in_(external_ids[i : i + BATCH]),
            )
        )


def records_from_frame(records: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (None for missing), ready for the database."""
    columns: dict[str, list[Any]] = {}
    for col in records.columns:
        series = records[col]
        missing = series.isna().to_numpy()
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values: list[Any] = list(series.dt.to_pydatetime())
        elif series.dtype.kind == "f":
            values = series.astype(float).tolist()
        elif series.dtype.kind == "b":
            values = series.astype(bool).tolist()
        else:
            values = series.astype(object).tolist()
        columns[col] = [None if m else v for v, m in zip(values, missing, strict=True)]
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
