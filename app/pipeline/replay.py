"""Quarantined records replayed when what rejected them changes, after every sync and on demand.

Two kinds of rejects wait in quarantine (``GET /api/v1/sources/{id}/quarantine``):

* **Unknown owner**: the record mapped, but its owner was not known yet. Its payload is the
  mapped record; :func:`app.pipeline.owned.replay_owners` stores it once the owner is known.
* **Mapping**: the CRM record itself could not be mapped: a stage or an activity type the
  catalogs did not list when it was read, a value the source's settings did not map, or a
  malformed field. Its payload is the raw CRM record, so it is mapped again through its
  stream (``connectors.base.Stream.remap``) with today's catalogs and settings; a record
  naming an id the catalog lacks makes the catalog be read again first.

Both run after every sync, with the catalogs the run just read, and on demand
(``POST /api/v1/sources/{id}/quarantine/replay``, ``quotagap quarantine replay ID``) as a run
of kind ``replay``. A record that maps now is stored and leaves quarantine (its days are marked
for the next compute, as any change's are); one still rejected keeps its place with the latest
reason, and one now rejected for its owner waits for that owner instead. Streams whose mapping
depends on no catalog or setting (``remap`` answers None) are not replayed: nothing changed.

The CRM is read (:func:`remap`) between database transactions, never inside one: a token
refresh during it stores the rotated tokens in a transaction of its own, which an open write
transaction would block on SQLite, and losing a rotated refresh token locks the source out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.pipeline import ingest
from app.pipeline.owned import MODELS, OBJECT_TYPE, OWNER_REASON, replay_owners, store_records
from app.sources.models import QuarantinedRecord, SyncRun
from connectors.base import Page, Stream
from connectors.http import BudgetPaused

log = logging.getLogger(__name__)

BATCH = 1000
Raws = dict[str, list[dict[str, Any]]]
Remapped = dict[str, list[Page]]


def pending(
    session: Session, *, source_id: int, streams: Iterable[Stream]
) -> dict[str, list[dict[str, Any]]]:
    """The raw payloads of the source's mapping rejects, by stream name."""
    found: Raws = {}
    for stream in streams:
        if stream.name not in MODELS:
            continue
        rows = session.execute(
            select(QuarantinedRecord.reason, QuarantinedRecord.payload)
            .where(
                QuarantinedRecord.source_id == source_id,
                QuarantinedRecord.object_type == OBJECT_TYPE[stream.name],
            )
            .order_by(QuarantinedRecord.id)
        ).all()
        raws = [r.payload for r in rows if not OWNER_REASON.fullmatch(r.reason)]
        if raws:
            found[stream.name] = raws
    return found


def remap(streams: Iterable[Stream], raws: Raws) -> tuple[Remapped, list[str]]:
    """``raws`` mapped again by their streams (this reads the CRM's catalogs), and notices for
    the streams a CRM error left for the next time, rather than failing what succeeded."""
    pages: Remapped = {}
    notices: list[str] = []
    for stream in streams:
        todo = raws.get(stream.name, [])
        try:
            mapped = [stream.remap(todo[i : i + BATCH]) for i in range(0, len(todo), BATCH)]
        except BudgetPaused:
            raise
        except Exception as exc:  # the CRM's or the network's: retried next time
            notices.append(f"{stream.name}: quarantine not replayed: {type(exc).__name__}: {exc}")
            log.warning("%s", notices[-1])
            continue
        done = [p for p in mapped if p is not None]
        if done:
            pages[stream.name] = done
    return pages, [n[:500] for n in notices]


def store(session: Session, *, source_id: int, remapped: Remapped, run: SyncRun) -> int:
    """Store what maps now (it leaves quarantine) and quarantine the rest again with its
    latest reason; returns how many records were stored."""
    stored = 0
    for name, pages in remapped.items():
        object_type = OBJECT_TYPE[name]
        for page in pages:
            rejected = len(page.rejects)
            store_records(session, source_id, name, page, run)  # owner rejects join the list
            stored += len(page.records) - (len(page.rejects) - rejected)
            items = [(r.external_id, r.reason, r.raw) for r in page.rejects]
            ingest.quarantine(session, source_id, object_type, items)
    return stored


def replay_all(
    session: Session,
    *,
    source_id: int,
    run: SyncRun,
    remapped: Remapped | None = None,
    notices: Iterable[str] = (),
) -> int:
    """Both replays into ``run`` (``details.replayed``, ``details.notices``)."""
    replayed = replay_owners(session, source_id=source_id, run=run)
    replayed += store(session, source_id=source_id, remapped=remapped or {}, run=run)
    more = list(notices)
    if more:
        run.details = {**run.details, "notices": [*run.details.get("notices", []), *more]}
    if replayed:
        run.details = {**run.details, "replayed": replayed}
    return replayed


def replay_run(
    session: Session,
    *,
    source_id: int,
    remapped: Remapped | None = None,
    notices: Iterable[str] = (),
) -> SyncRun:
    """The replays on demand, recorded as a run of kind ``replay``: ``inserted`` / ``updated``
    as a sync counts them, ``details.replayed`` and ``details.still_quarantined``."""
    run = SyncRun(source_id=source_id, kind="replay", status="running")
    session.add(run)
    session.flush()
    replayed = replay_all(session, source_id=source_id, run=run, remapped=remapped, notices=notices)
    left = session.scalar(
        select(func.count())
        .select_from(QuarantinedRecord)
        .where(QuarantinedRecord.source_id == source_id)
    )
    run.status, run.finished_at = "succeeded", utcnow()
    run.details = {**run.details, "replayed": replayed, "still_quarantined": int(left or 0)}
    session.flush()
    return run
