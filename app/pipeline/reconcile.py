"""Full resync: what the CRM no longer returns is marked deleted.

An incremental sync only sees what changed since its cursor, so three things escape it for
good: a record deleted past the CRM's own trail (Salesforce's recycle bin is emptied after 15
days; HubSpot and Pipedrive purge), a change the CRM made without touching the record's
modification stamp (a HubSpot activity re-associated to another deal), and whatever was missed
while a source was misconfigured. A *full resync* re-reads every stream from the start (no
cursor) through the same page-by-page upserts, so a changed record is corrected and an
identical one is not written; then, stream by stream, :func:`reconcile` marks deleted each
stored record of the source that the complete read did not return, and drops the quarantined
records the CRM no longer has.

Reads go on while it runs: each page is its own transaction, as in any sync, and the
reconciliation writes only the rows it deletes. A stream whose read did not complete (an error,
a paused budget) is not reconciled: an incomplete read proves nothing.

A guard against a CRM answer that is wrong rather than a real purge (a permission taken away
lists nothing): a stream whose complete read would delete more than ``MAX_DELETE_SHARE`` of
its stored live records, beyond ``MIN_GUARDED`` of them, is not reconciled, and the run says
so in ``details.notices``.

The ids seen are kept as 64-bit hashes (8 bytes each, 80 MB for ten million activities, where
a set of strings would take about a gigabyte). A collision can only keep a deleted record
alive, never delete a live one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.pipeline import ingest
from app.pipeline.owned import MODELS, OBJECT_TYPE, mark_deleted
from app.sources.models import QuarantinedRecord, SyncRun

MAX_DELETE_SHARE = 0.5
MIN_GUARDED = 100
CHUNK = 20_000


class SeenIds:
    """The external ids a complete read returned (records, rejects and deletes alike)."""

    def __init__(self) -> None:
        self._hashes = array("q")
        self._sorted: np.ndarray | None = None

    def add(self, external_ids: Iterable[object]) -> None:
        self._hashes.extend(hash(str(e)) for e in external_ids if e is not None)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._hashes)

    def missing(self, external_ids: list[str]) -> list[str]:
        """Those of ``external_ids`` the read did not return."""
        if self._sorted is None:
            self._sorted = np.unique(np.frombuffer(self._hashes, dtype=np.int64))
        probe = np.fromiter((hash(e) for e in external_ids), dtype=np.int64)
        found = np.isin(probe, self._sorted, assume_unique=False)
        return [e for e, hit in zip(external_ids, found.tolist(), strict=True) if not hit]


def reconcile(session: Session, *, source_id: int, stream: str, seen: SeenIds, run: SyncRun) -> int:
    """Mark deleted the source's live ``stream`` records that ``seen`` lacks, and drop their
    quarantined records; returns how many records were marked (0 when the guard refused)."""
    gone = _missing_live(session, source_id, stream, seen)
    live = _live_count(session, source_id, stream)
    if len(gone) > MIN_GUARDED and len(gone) > MAX_DELETE_SHARE * live:
        notice = (
            f"{stream}: not reconciled: the CRM returned {len(seen):,} records where "
            f"{live:,} are stored, and deleting the {len(gone):,} it did not return would "
            f"remove more than {MAX_DELETE_SHARE:.0%} of them; check the connection's "
            "permissions, then resync again"
        )
        run.details = {**run.details, "notices": [*run.details.get("notices", []), notice]}
        return 0
    for i in range(0, len(gone), ingest.BATCH):
        mark_deleted(session, source_id, stream, gone[i : i + ingest.BATCH], run)
    object_type = OBJECT_TYPE[stream]
    held = session.scalars(
        select(QuarantinedRecord.record_key).where(
            QuarantinedRecord.source_id == source_id,
            QuarantinedRecord.object_type == object_type,
            QuarantinedRecord.external_id.is_not(None),
        )
    ).all()
    ingest.release(session, source_id, object_type, seen.missing(list(held)))
    reconciled = {**run.details.get("reconciled", {}), stream: len(gone)}
    run.details = {**run.details, "reconciled": reconciled}
    return len(gone)


def _missing_live(session: Session, source_id: int, stream: str, seen: SeenIds) -> list[str]:
    """Keyset-paged, so ten million stored ids are never in memory at once."""
    model = MODELS[stream]
    gone: list[str] = []
    after = 0
    while True:
        rows = session.execute(
            select(model.id, model.external_id)
            .where(model.source_id == source_id, model.is_deleted.is_(False), model.id > after)
            .order_by(model.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return gone
        gone.extend(seen.missing([r.external_id for r in rows]))
        after = rows[-1].id


def _live_count(session: Session, source_id: int, stream: str) -> int:
    model = MODELS[stream]
    return int(
        session.scalar(
            select(func.count()).where(model.source_id == source_id, model.is_deleted.is_(False))
        )
        or 0
    )
