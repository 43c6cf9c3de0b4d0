"""The sync engine: drives any connector's streams into storage, page by page.

Guarantees (whatever the CRM):

* Each page's records and the stream's cursor are written in ONE transaction. A sync killed at
  any point leaves whole pages behind it, and the next run resumes from the stored cursor.
* Streams are read from ``cursor - lookback`` with ``>=``: late and equal timestamps are common,
  and re-reading a record is harmless because records are upserted by (source, external id)
  and identical ones are not written at all. Re-running a sync with no changes writes nothing.
* The cursor never moves past the run's start time, so a record modified during the run is
  read again by the next one.
* A record that cannot be mapped, or whose owner is unknown, is quarantined with its reason
  and raw payload; the sync goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import ingest, secrets
from app.activities.models import Activity
from app.config import Settings
from app.db import transaction, utcnow
from app.deals.models import Deal
from app.reps import service as reps_service
from app.reps.models import Rep
from app.sources.models import Source, SyncCursor, SyncRun
from app.teams import service as teams_service
from connectors import registry
from connectors.base import ACTIVITY_FIELDS, DEAL_FIELDS, Page, iso, parse_datetime

log = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=5)
# What an OAuth refresh may change: the tokens, and where the account lives now.
TOKEN_FIELDS = {"access_token", "refresh_token", "instance_url", "api_domain"}
MODELS: dict[str, type[Deal] | type[Activity]] = {"deals": Deal, "activities": Activity}
FIELDS = {"deals": DEAL_FIELDS, "activities": ACTIVITY_FIELDS}
OBJECT_TYPE = {"owners": "owner", "deals": "deal", "activities": "activity"}


class SyncAlreadyRunning(RuntimeError):
    pass


def run_sync(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    source_id: int,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    lookback: timedelta = LOOKBACK,
    on_page: Callable[[SyncRun], None] | None = None,
) -> SyncRun:
    """Sync one source now; returns the finished run (succeeded or failed)."""
    started = time.perf_counter()
    with transaction(session_factory) as session:
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"source {source_id} not found")
        # A run left "running" by a crashed process is over: say so instead of waiting forever.
        session.execute(
            update(SyncRun)
            .where(SyncRun.source_id == source_id, SyncRun.status == "running")
            .values(status="failed", finished_at=utcnow(), error="interrupted (process ended)")
        )
        run = SyncRun(source_id=source_id, kind="sync", status="running")
        session.add(run)
        session.flush()
        run_id = run.id
        kind, base_url, config = source.kind, source.base_url, dict(source.config)
        credentials = secrets.decrypt(settings, source.credentials_encrypted)
    run_start = utcnow()

    def store_tokens(payload: dict[str, Any]) -> None:
        # Rotated OAuth tokens are kept (encrypted) at once: losing them would lock us out.
        credentials.update({k: v for k, v in payload.items() if k in TOKEN_FIELDS and v})
        with transaction(session_factory) as s:
            src = s.get(Source, source_id)
            if src is not None:
                src.credentials_encrypted = secrets.encrypt(settings, credentials)
                if payload.get("instance_url"):  # Salesforce may move an org to another host
                    src.base_url = str(payload["instance_url"]).rstrip("/")

    error: str | None = None
    try:
        connector = registry.connector_for(
            kind,
            base_url=base_url,
            credentials=credentials,
            config=config,
            on_refresh=store_tokens,
            transport=transport,
            sleep=sleep,
        )
        try:
            for stream in connector.streams():
                _sync_stream(
                    session_factory,
                    source_id,
                    run_id,
                    stream.name,
                    stream.pages,
                    run_start=run_start,
                    lookback=lookback,
                    on_page=on_page,
                )
        finally:
            connector.client.close()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("sync of source %s failed: %s", source_id, error)
    with transaction(session_factory) as session:
        done = session.get(SyncRun, run_id)
        source = session.get(Source, source_id)
        assert done is not None and source is not None
        done.status = "failed" if error else "succeeded"
        done.error = error
        done.finished_at = utcnow()
        done.details = {**done.details, "duration_s": round(time.perf_counter() - started, 3)}
        if error:
            source.last_error = error
            source.consecutive_failures += 1
        else:
            source.last_success_at = done.finished_at
            source.last_error = None
            source.consecutive_failures = 0
    with session_factory() as session:
        final = session.get(SyncRun, run_id)
        assert final is not None
        return final


def _sync_stream(
    session_factory: sessionmaker[Session],
    source_id: int,
    run_id: int,
    stream_name: str,
    pages: Callable[[datetime | None], Any],
    *,
    run_start: datetime,
    lookback: timedelta,
    on_page: Callable[[SyncRun], None] | None,
) -> None:
    with session_factory() as session:
        cursor = session.get(SyncCursor, (source_id, stream_name))
        stored = parse_datetime(cursor.value, "cursor") if cursor and cursor.value else None
    since = stored - lookback if stored else None
    managers: dict[str, str] = {}
    for page in pages(since):
        with transaction(session_factory) as session:
            current = session.get(SyncRun, run_id)
            assert current is not None
            run = current
            if stream_name == "owners":
                _store_owners(session, source_id, page, managers)
            else:
                _store_records(session, source_id, stream_name, page, run)
            _quarantine(session, source_id, stream_name, page)
            _advance(session, source_id, stream_name, page.cursor, run_start)
            run.fetched += page.fetched
            run.quarantined += len(page.rejects)
            run.pages += 1
            progress = dict(run.details.get("streams", {}))
            progress[stream_name] = progress.get(stream_name, 0) + page.fetched
            run.details = {**run.details, "streams": progress}
        if on_page is not None:
            on_page(run)
    if managers:
        with transaction(session_factory) as session:
            _link_managers(session, source_id, managers)


def _advance(
    session: Session, source_id: int, stream: str, page_cursor: str | None, run_start: datetime
) -> None:
    if page_cursor is None:
        return
    value = parse_datetime(page_cursor, "cursor")
    assert value is not None
    value = min(value, run_start)
    row = session.get(SyncCursor, (source_id, stream))
    if row is None:
        session.add(SyncCursor(source_id=source_id, stream=stream, value=iso(value)))
        return
    current = parse_datetime(row.value, "cursor") if row.value else None
    if current is None or value > current:
        row.value = iso(value)


def _store_owners(session: Session, source_id: int, page: Page, managers: dict[str, str]) -> None:
    for owner in page.records:
        rep = reps_service.resolve_identity(
            session=session,
            source_id=source_id,
            external_id=str(owner["external_id"]),
            name=owner.get("name") or str(owner.get("email") or owner["external_id"]),
            email=owner.get("email"),
            is_active=bool(owner.get("is_active", True)),
        )
        rep.is_active = bool(owner.get("is_active", True))
        if owner.get("team_name") and rep.team_id is None:
            rep.team_id = teams_service.get_or_create(
                session=session, name=str(owner["team_name"])
            ).id
        if owner.get("manager_external_id"):
            managers[str(owner["external_id"])] = str(owner["manager_external_id"])


def _link_managers(session: Session, source_id: int, managers: dict[str, str]) -> None:
    """The CRM's hierarchy (Salesforce ManagerId): who reports to whom, and who manages."""
    ids = reps_service.identity_map(session=session, source_id=source_id)
    for report, manager in managers.items():
        rep_id, manager_id = ids.get(report), ids.get(manager)
        if rep_id is None or manager_id is None or rep_id == manager_id:
            continue
        rep = session.get(Rep, rep_id)
        boss = session.get(Rep, manager_id)
        if rep is None or boss is None:
            continue
        rep.manager_id = manager_id
        boss.role = "manager"


def _store_records(session: Session, source_id: int, stream: str, page: Page, run: SyncRun) -> None:
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


def _reject(record: dict[str, Any], reason: str) -> Any:
    from connectors.base import Reject

    raw = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
    return Reject(str(record.get("external_id")), reason, raw)


def _quarantine(session: Session, source_id: int, stream: str, page: Page) -> None:
    if page.rejects:
        ingest.quarantine(
            session,
            source_id,
            OBJECT_TYPE[stream],
            [(r.external_id, r.reason, r.raw) for r in page.rejects],
        )


def latest_runs(session: Session, source_id: int, limit: int = 20) -> list[SyncRun]:
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.source_id == source_id)
            .order_by(SyncRun.id.desc())
            .limit(limit)
        )
    )
