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
  and raw payload; the sync goes on. At the end of a run, the quarantined records that the
  owners and catalogs just read now explain are stored (``app.pipeline.replay``).
* A full resync (``full``) reads every stream from the start and marks deleted what the CRM
  no longer returns (``app.pipeline.reconcile``).

Throughput: a sync mostly waits, on the CRM for the next page and on the database to write the
last one. A reader thread therefore fetches and maps pages ahead of the writer, which stores
about ``COALESCE_RECORDS`` per transaction (``app.pipeline.prefetch``). Only the writer
touches the database; the reader's one database write (rotated OAuth tokens) takes the same
lock as the writer's transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core import secrets
from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import retry_while_unavailable, transaction
from app.pipeline import ingest, replay
from app.pipeline.owned import MODELS, OBJECT_TYPE, mark_deleted, store_records
from app.pipeline.prefetch import Prefetch, coalesce
from app.pipeline.reconcile import SeenIds, reconcile
from app.reps import service as reps_service
from app.reps.models import Rep
from app.sources import service as sources_service
from app.sources.models import Source, SyncCursor, SyncRun
from app.teams import service as teams_service
from connectors import registry
from connectors.base import Connector, Page, iso, parse_datetime
from connectors.http import BudgetPaused

log = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=5)
# What an OAuth refresh may change: the tokens, and where the account lives now.
TOKEN_FIELDS = {"access_token", "refresh_token", "instance_url", "api_domain"}
# Records the reader may hold ahead of the writer (bounds memory whatever the page size), and
# the most one transaction stores: large enough to amortise a transaction's fixed queries,
# small enough that a kill loses little work.
PREFETCH_RECORDS = 8000
COALESCE_RECORDS = 4000


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
    full: bool = False,
) -> SyncRun:
    """Sync one source now; returns the finished run (succeeded or failed). ``full``: a full
    resync (``app.pipeline.reconcile``), recorded as a run of kind ``resync``."""
    started = time.perf_counter()
    opened = _open_run(session_factory, settings, source_id, kind="resync" if full else "sync")
    run_start = utcnow()
    # The reader thread refreshes tokens while the writer stores pages: one writer at a time
    # (a test's session factory shares one connection, which no two threads may use at once).
    db_lock = threading.Lock()

    error: str | None = None
    paused: str | None = None
    try:
        connector = _connector(
            session_factory, settings, opened, db_lock=db_lock, transport=transport, sleep=sleep
        )
        try:
            _sync_streams(
                session_factory,
                opened.run_id,
                source_id,
                connector,
                run_start=run_start,
                lookback=lookback,
                on_page=on_page,
                db_lock=db_lock,
                full=full,
            )
        finally:
            connector.client.close()
    except BudgetPaused as exc:
        # Not a failure: what was read is stored, and the schedule resumes from the cursor.
        paused = str(exc)[:2000]
        log.warning("sync of source %s %s", source_id, paused)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("sync of source %s failed: %s", source_id, error)
    # The database may be what failed the run: its outcome is written once it is back (about
    # a minute of tries) rather than left "running".
    retry_while_unavailable(
        lambda: _close_run(
            session_factory, settings, opened, error=error, paused=paused, started=started
        ),
        what=f"sync run {opened.run_id}: its outcome",
    )
    with session_factory() as session:
        final = session.get(SyncRun, opened.run_id)
        assert final is not None
        return final


def replay_now(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    source_id: int,
    transport: httpx.BaseTransport | None = None,
) -> SyncRun:
    """Replay the source's quarantine now (``app.pipeline.replay``): a CRM source's mapping
    rejects are mapped again with catalogs read from the CRM; a CSV import's owners only."""
    with session_factory() as session:
        source = sources_service.get(session=session, source_id=source_id)
        opened = _OpenRun.of(source, settings, run_id=0)  # the replay records its own run
    remapped: replay.Remapped = {}
    notices: list[str] = []
    if opened.kind in registry.CRM_KINDS:
        try:
            connector = _connector(
                session_factory, settings, opened, db_lock=threading.Lock(), transport=transport
            )
        except Exception as exc:  # unusable credentials: the owners can still be replayed
            notices.append(f"quarantine not remapped: {type(exc).__name__}: {exc}"[:500])
        else:
            try:
                streams = connector.streams()
                with session_factory() as session:
                    raws = replay.pending(session, source_id=source_id, streams=streams)
                remapped, notices = replay.remap(streams, raws)
            finally:
                connector.client.close()
    with transaction(session_factory) as session:
        run = replay.replay_run(session, source_id=source_id, remapped=remapped, notices=notices)
        run_id = run.id
    with session_factory() as session:
        done = session.get(SyncRun, run_id)
        assert done is not None
        return done


@dataclass(frozen=True)
class _OpenRun:
    """A run just recorded as running, and what its connector needs of the source."""

    source_id: int
    run_id: int
    kind: str
    base_url: str | None
    config: dict[str, Any]
    credentials: dict[str, Any]

    @classmethod
    def of(cls, source: Source, settings: Settings, run_id: int) -> _OpenRun:
        return cls(
            source_id=source.id,
            run_id=run_id,
            kind=source.kind,
            base_url=source.base_url,
            config=dict(source.config),
            credentials=secrets.decrypt(settings, source.credentials_encrypted),
        )


def _connector(
    session_factory: sessionmaker[Session],
    settings: Settings,
    opened: _OpenRun,
    *,
    db_lock: threading.Lock,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None] = time.sleep,
) -> Connector:
    # Every request goes through the address guard (SSRF): no credentials to internal hosts.
    guard = sources_service.request_guard(settings)
    store_tokens = _token_store(
        session_factory,
        settings,
        opened.source_id,
        opened.credentials,
        db_lock=db_lock,
        guard=guard,
    )
    return registry.connector_for(
        opened.kind,
        base_url=opened.base_url,
        credentials=opened.credentials,
        config=opened.config,
        on_refresh=store_tokens,
        transport=transport,
        sleep=sleep,
        request_guard=guard,
    )


def _open_run(
    session_factory: sessionmaker[Session], settings: Settings, source_id: int, *, kind: str
) -> _OpenRun:
    with transaction(session_factory) as session:
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"source {source_id} not found")
        # A run left "running" by a crashed process is over: say so instead of waiting forever.
        session.execute(
            update(SyncRun)
            .where(SyncRun.source_id == source_id, SyncRun.status == "running")
            .where(SyncRun.kind.in_(("sync", "resync")))
            .values(
                status="failed",
                finished_at=utcnow(),
                error="interrupted: its process ended, or lost the database, before the end",
            )
        )
        run = SyncRun(source_id=source_id, kind=kind, status="running")
        session.add(run)
        session.flush()
        return _OpenRun.of(source, settings, run.id)


def _sync_streams(
    session_factory: sessionmaker[Session],
    run_id: int,
    source_id: int,
    connector: Connector,
    *,
    run_start: datetime,
    lookback: timedelta,
    on_page: Callable[[SyncRun], None] | None,
    db_lock: threading.Lock,
    full: bool,
) -> None:
    """Read every stream of the source and store its pages; raises what the connector does.
    ``full``: every stream from the start, then reconciled (``app.pipeline.reconcile``)."""
    streams = list(connector.streams())
    with db_lock, transaction(session_factory) as session:
        current = session.get(SyncRun, run_id)
        assert current is not None
        current.details = {**current.details, "stream_count": len(streams)}
    for stream in streams:
        seen = SeenIds() if full and stream.name in MODELS else None
        _sync_stream(
            session_factory,
            source_id,
            run_id,
            stream.name,
            stream.pages,
            run_start=run_start,
            lookback=lookback,
            on_page=on_page,
            db_lock=db_lock,
            seen=seen,
        )
        if seen is not None:  # read to its end: what it did not return is gone
            with db_lock, transaction(session_factory) as session:
                current = session.get(SyncRun, run_id)
                assert current is not None
                reconcile(session, source_id=source_id, stream=stream.name, seen=seen, run=current)
    # The owners and catalogs were just read: quarantined records they now explain are stored.
    with db_lock, session_factory() as session:
        raws = replay.pending(session, source_id=source_id, streams=streams)
    remapped, notices = replay.remap(streams, raws)
    with db_lock, transaction(session_factory) as session:
        current = session.get(SyncRun, run_id)
        assert current is not None
        replay.replay_all(
            session, source_id=source_id, run=current, remapped=remapped, notices=notices
        )


def _close_run(
    session_factory: sessionmaker[Session],
    settings: Settings,
    opened: _OpenRun,
    *,
    error: str | None,
    started: float,
    paused: str | None = None,
) -> None:
    """Record the run's outcome (``paused`` when the API budget stopped it: the message), and
    the source's health (last success, failures in a row; a pause is neither)."""
    source_id = opened.source_id
    with transaction(session_factory) as session:
        done = session.get(SyncRun, opened.run_id)
        source = session.get(Source, source_id)
        assert done is not None and source is not None
        done.status = "failed" if error else "paused" if paused else "succeeded"
        done.error = error or paused
        done.finished_at = utcnow()
        done.details = {**done.details, "duration_s": round(time.perf_counter() - started, 3)}
        seen = done.details.get("earliest_day")
        notice = ingest.horizon_notice(settings, date.fromisoformat(seen) if seen else None)
        if notice:
            done.details = {**done.details, "notices": [*done.details.get("notices", []), notice]}
            log.warning("sync of source %s: %s", source_id, notice)
        if error:
            source.last_error = error
            source.consecutive_failures += 1
        elif not paused:
            source.last_success_at = done.finished_at
            source.last_error = None
            source.consecutive_failures = 0


def _token_store(
    session_factory: sessionmaker[Session],
    settings: Settings,
    source_id: int,
    credentials: dict[str, Any],
    *,
    db_lock: threading.Lock,
    guard: Callable[[str], None],
) -> Callable[[dict[str, Any]], None]:
    """What a sync does with a token answer (``on_refresh``): keeps the tokens, encrypted."""

    def store_tokens(payload: dict[str, Any]) -> None:
        # A token answer may say the account moved: a host the guard refuses is not stored,
        # and fails the sync once the rotated tokens are safe.
        refused = sources_service.refused_token_urls(payload, guard)
        # Rotated OAuth tokens are kept (encrypted) at once: losing them would lock us out.
        credentials.update(
            {k: v for k, v in payload.items() if k in TOKEN_FIELDS and v and k not in refused}
        )
        with db_lock, transaction(session_factory) as s:
            src = s.get(Source, source_id)
            if src is not None:
                src.credentials_encrypted = secrets.encrypt(settings, credentials)
                # Salesforce may move an org to another host
                if payload.get("instance_url") and "instance_url" not in refused:
                    src.base_url = str(payload["instance_url"]).rstrip("/")
        if refused:
            raise next(iter(refused.values()))

    return store_tokens


def _sync_stream(
    session_factory: sessionmaker[Session],
    source_id: int,
    run_id: int,
    stream_name: str,
    pages: Callable[[datetime | None], Iterator[Page]],
    *,
    run_start: datetime,
    lookback: timedelta,
    on_page: Callable[[SyncRun], None] | None,
    db_lock: threading.Lock,
    seen: SeenIds | None = None,
) -> None:
    """One stream from its cursor (from the start when ``seen`` collects a full read)."""
    with db_lock, session_factory() as session:
        cursor = session.get(SyncCursor, (source_id, stream_name))
        stored = parse_datetime(cursor.value, "cursor") if cursor and cursor.value else None
    since = stored - lookback if stored and seen is None else None
    managers: dict[str, str] = {}
    reader = Prefetch(pages(since), PREFETCH_RECORDS)
    try:
        for batch in reader.batches(1 if stream_name == "owners" else COALESCE_RECORDS):
            page = coalesce(batch)
            if seen is not None:
                seen.add(r.get("external_id") for r in page.records)
                seen.add(r.external_id for r in page.rejects)
                seen.add(page.deleted)
            with db_lock, transaction(session_factory) as session:
                current = session.get(SyncRun, run_id)
                assert current is not None
                run = current
                if stream_name == "owners":
                    _store_owners(session, source_id, page, managers)
                else:
                    store_records(session, source_id, stream_name, page, run)
                    mark_deleted(session, source_id, stream_name, page.deleted, run)
                _quarantine(session, source_id, stream_name, page)
                _advance(session, source_id, stream_name, page.cursor, run_start)
                run.fetched += page.fetched
                run.quarantined += len(page.rejects)
                run.pages += len(batch)
                progress = dict(run.details.get("streams", {}))
                progress[stream_name] = progress.get(stream_name, 0) + page.fetched
                totals = dict(run.details.get("totals", {}))
                if page.total is not None:
                    totals.setdefault(stream_name, page.total)
                run.details = {**run.details, "streams": progress, "totals": totals}
            if on_page is not None:
                on_page(run)
    finally:
        reader.close()
    if managers:
        with db_lock, transaction(session_factory) as session:
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
