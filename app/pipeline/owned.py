"""CRM records stored under their rep, and replayed from quarantine once their owner is known.

A connector maps a CRM record to our fields with its owner's CRM id; the engine stores it under
the rep that id belongs to (``RepIdentity``). A record whose owner is not known yet (a user
added after the owners were read, or linked later) is quarantined with its *mapped* fields as
payload and the reason ``unknown owner '…'`` (``missing owner`` without one).

Nothing rejected is lost for good: :func:`replay_owners` stores those records as soon as their
owner is known, with no call to the CRM; the sync engine runs it after every successful sync
(the owners were just read), and ``POST /api/v1/sources/{id}/quarantine/replay`` runs it on
demand (``app.pipeline.replay``). A record the CRM changed since it was quarantined was read
again and replaced its payload (or was stored and left quarantine), so what is replayed is its
latest version.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.deals.models import Deal
from app.pipeline import ingest
from app.reps import service as reps_service
from app.sources.models import QuarantinedRecord, SyncRun
from connectors.base import ACTIVITY_FIELDS, DEAL_FIELDS, Page, Reject, parse_datetime

MODELS: dict[str, type[Deal] | type[Activity]] = {"deals": Deal, "activities": Activity}
FIELDS = {"deals": DEAL_FIELDS, "activities": ACTIVITY_FIELDS}
OBJECT_TYPE = {"owners": "owner", "deals": "deal", "activities": "activity"}
STREAM_OF = {"deal": "deals", "activity": "activities"}
# The reasons store_records gives (the connectors' own say "missing owner_id" and the like).
OWNER_REASON = re.compile(r"missing owner|unknown owner '.*'")
REPLAY_BATCH = 1000


def store_records(session: Session, source_id: int, stream: str, page: Page, run: SyncRun) -> None:
    """Upsert the page's records under their reps, counting into ``run``; a record whose
    owner is unknown joins ``page.rejects`` (module docstring)."""
    ids = reps_service.identity_map(session=session, source_id=source_id)
    rows: list[dict[str, Any]] = []
    for record in page.records:
        owner = record.get("owner_external_id")
        rep_id = ids.get(str(owner)) if owner is not None else None
        if rep_id is None:
            reason = "missing owner" if owner is None else f"unknown owner {owner!r}"
            page.rejects.append(_reject(record, reason))
            continue
        rows.append({**{f: record.get(f) for f in FIELDS[stream]}, "rep_id": rep_id})
    counts = ingest.upsert_records(session, MODELS[stream], source_id, rows)
    ingest.release(session, source_id, OBJECT_TYPE[stream], [r["external_id"] for r in rows])
    run.inserted += counts.inserted
    run.updated += counts.updated
    run.deleted += counts.deleted
    if counts.earliest is not None:
        seen = run.details.get("earliest_day")
        first = ingest.earliest(counts.earliest, date.fromisoformat(seen) if seen else None)
        run.details = {**run.details, "earliest_day": str(first)}


def mark_deleted(
    session: Session, source_id: int, stream: str, external_ids: list[str], run: SyncRun
) -> None:
    """Records the CRM reports deleted without their data (``Page.deleted``): the stored ones
    are upserted as they are with ``is_deleted`` set, so their days are marked for the next
    compute as any change's are; ids never stored are nothing to delete."""
    if not external_ids:
        return
    model = MODELS[stream]
    columns = [model.rep_id, *(getattr(model, f) for f in FIELDS[stream])]
    rows = session.execute(
        select(*columns).where(
            model.source_id == source_id,
            model.external_id.in_(external_ids),
            model.is_deleted.is_(False),
        )
    ).mappings()
    gone = [{**row, "is_deleted": True} for row in rows]
    counts = ingest.upsert_records(session, model, source_id, gone)
    run.updated += counts.updated
    run.deleted += counts.deleted


def _reject(record: dict[str, Any], reason: str) -> Reject:
    raw = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
    return Reject(str(record.get("external_id")), reason, raw)


def replay_owners(session: Session, *, source_id: int, run: SyncRun) -> int:
    """Store the source's records quarantined for their owner whose owner is now known;
    returns how many left quarantine (counted into ``run`` as a sync counts)."""
    known = reps_service.identity_map(session=session, source_id=source_id)
    replayed = 0
    for object_type, stream in STREAM_OF.items():
        rows = session.scalars(
            select(QuarantinedRecord)
            .where(
                QuarantinedRecord.source_id == source_id,
                QuarantinedRecord.object_type == object_type,
                or_(
                    QuarantinedRecord.reason == "missing owner",
                    QuarantinedRecord.reason.like("unknown owner %"),
                ),
            )
            .order_by(QuarantinedRecord.id)
        ).all()
        records = [
            _restored(row.payload)
            for row in rows
            if OWNER_REASON.fullmatch(row.reason)
            and str(row.payload.get("owner_external_id")) in known
        ]
        for i in range(0, len(records), REPLAY_BATCH):
            page = Page(records=records[i : i + REPLAY_BATCH])
            store_records(session, source_id, stream, page, run)
            replayed += len(page.records) - len(page.rejects)
    return replayed


def _restored(payload: dict[str, Any]) -> dict[str, Any]:
    """A quarantined mapped record with its dates and times typed again (stored as text)."""
    record = dict(payload)
    for name, kind in _DATED.items():
        value = record.get(name)
        if isinstance(value, str):
            record[name] = (
                parse_datetime(value, name) if kind is datetime else date.fromisoformat(value)
            )
    return record


# The typed fields of the mapped records (connectors.base), as their JSON payload has them.
_DATED: dict[str, type[date]] = {
    "created_at": datetime,
    "closed_at": datetime,
    "source_modified_at": datetime,
    "occurred_at": datetime,
    "close_date": date,
}
