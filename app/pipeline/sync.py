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
  and raw payload; the sync goes on. Records quarantined for an owner that is known by the
  end of a run are stored then (``app.pipeline.owned``).

Throughput: a sync mostly waits, on the CRM for the next page and on the database to write the
last one. A reader thread (``_Prefetch``) therefore fetches and maps pages ahead of the writer,
within a bounded number of records, and the writer stores consecutive pages together, about
``COALESCE_RECORDS`` per transaction (``_coalesce``): fewer, larger transactions than the
CRM's page size allows (HubSpot's search pages hold 200 records), with the same all-or-nothing
guarantee, since the cursor stored is the last page's. Only the writer touches the database;
the reader's one database write (rotated OAuth tokens) takes the same lock as the writer's
transactions.
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
from app.core.db import transaction
from app.pipeline import ingest
from app.pipeline.owned import MODELS, OBJECT_TYPE, mark_deleted, replay_owners, store_records
from app.pipeline.reconcile import SeenIds, reconcile
from app.reps import service as reps_service
from app.reps.models import Rep
from app.sources import service as sources_service
from app.sources.models import Source, SyncCursor, SyncRun
from app.teams import service as teams_service
from connectors import registry
from connectors.base import Connector, Page, Reject, iso, parse_datetime
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

    # Every request goes through the address guard (SSRF): no credentials to internal hosts.
    guard = sources_service.request_guard(settings)
    store_tokens = _token_store(
        session_factory, settings, source_id, opened.credentials, db_lock=db_lock, guard=guard
    )

    error: str | None = None
    paused: str | None = None
    try:
        connector = registry.connector_for(
            opened.kind,
            base_url=opened.base_url,
            credentials=opened.credentials,
            config=opened.config,
            on_refresh=store_tokens,
            transport=transport,
            sleep=sleep,
            request_guard=guard,
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
    _close_run(session_factory, settings, opened, error=error, paused=paused, started=started)
    with session_factory() as session:
        final = session.get(SyncRun, opened.run_id)
        assert final is not None
        return final


@dataclass(frozen=True)
class _OpenRun:
    """A run just recorded as running, and what its connector needs of the source."""

    source_id: int
    run_id: int
    kind: str
    base_url: str | None
    config: dict[str, Any]
    credentials: dict[str, Any]


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
            .values(status="failed", finished_at=utcnow(), error="interrupted (process ended)")
        )
        run = SyncRun(source_id=source_id, kind=kind, status="running")
        session.add(run)
        session.flush()
        return _OpenRun(
            source_id=source_id,
            run_id=run.id,
            kind=source.kind,
            base_url=source.base_url,
            config=dict(source.config),
            credentials=secrets.decrypt(settings, source.credentials_encrypted),
        )


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
    # The owners were just read: records quarantined for an owner now known are stored.
    with db_lock, transaction(session_factory) as session:
        current = session.get(SyncRun, run_id)
        assert current is not None
        replayed = replay_owners(session, source_id=source_id, run=current)
        if replayed:
            current.details = {**current.details, "replayed": replayed}


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
    reader = _Prefetch(pages(since), PREFETCH_RECORDS)
    try:
        for batch in reader.batches(1 if stream_name == "owners" else COALESCE_RECORDS):
            page = _coalesce(batch)
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


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Prefetch:
    """A stream's pages read in a thread, at most ``budget`` records ahead of the writer.

    The pages keep their order; an error of the reader reaches the writer after the pages read
    before it, exactly where a plain loop over the pages would have raised it.
    """

    def __init__(self, pages: Iterator[Page], budget: int) -> None:
        self._budget = budget
        self._items: list[Page | _Failed | None] = []  # None: the stream ended
        self._held = 0  # records in self._items
        self._stop = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(
            target=self._read, args=(pages,), name="sync-reader", daemon=True
        )
        self._thread.start()

    def _read(self, pages: Iterator[Page]) -> None:
        item: Page | _Failed | None
        try:
            for page in pages:
                if not self._put(page, len(page.records) + len(page.rejects)):
                    return
            item = None
        except BaseException as exc:  # handed to the writer, which raises it
            item = _Failed(exc)
        self._put(item, 0)

    def _put(self, item: Page | _Failed | None, size: int) -> bool:
        with self._ready:
            # One page always fits, however large: a stream must be able to progress.
            while self._items and self._held + size > self._budget and not self._stop:
                self._ready.wait()
            if self._stop:
                return False
            self._items.append(item)
            self._held += size
            self._ready.notify_all()
            return True

    def batches(self, limit: int) -> Iterator[list[Page]]:
        """Consecutive pages of about ``limit`` records (fewer at the end of the stream or
        before an error; a single page may be more).

        The writer waits for a full batch rather than storing whatever is ready: the reader
        goes on meanwhile, so waiting costs nothing, while small transactions would cost the
        writer more per record exactly when it is behind.
        """
        while True:
            batch: list[Page] = []
            size = 0
            failed: _Failed | None = None
            ended = full = False
            with self._ready:
                while not (ended or full or failed):
                    while not self._items:
                        self._ready.wait()
                    while self._items:
                        head = self._items[0]
                        if isinstance(head, Page):
                            n = len(head.records) + len(head.rejects)
                            if batch and size + n > limit:
                                full = True
                                break
                            batch.append(head)
                            size += n
                            self._held -= n
                        elif head is None:
                            ended = True
                        else:
                            failed = head
                        self._items.pop(0)
                        if ended or failed:
                            break
                    full = full or size >= limit
                    self._ready.notify_all()
            if batch:
                yield batch
            if failed is not None:
                raise failed.error
            if ended:
                return

    def close(self) -> None:
        with self._ready:
            self._stop = True
            self._ready.notify_all()
        # A reader inside a request finishes it (or times out) on its own; not waited for.
        self._thread.join(timeout=1.0)


def _coalesce(batch: list[Page]) -> Page:
    """Consecutive pages of one stream as one page that stores the same end state.

    A record repeated in a later page (changed while paging, or re-read at a boundary) is stored
    as its latest version only, and an earlier page's reject of a record that a later page
    carries is dropped: processed one page at a time, the later page would have released it.
    """
    if len(batch) == 1:
        return batch[0]
    latest: dict[Any, dict[str, Any]] = {}
    rejects: list[Reject] = []
    deleted: list[str] = []
    cursors: list[datetime] = []
    fetched = 0
    for page in batch:
        for record in page.records:
            key = record.get("external_id")
            latest.pop(key, None)  # re-inserted: keeps the order of the latest versions
            latest[key] = record
        fresh = {r.get("external_id") for r in page.records}
        rejects = [r for r in rejects if r.external_id not in fresh]
        rejects.extend(page.rejects)
        deleted.extend(page.deleted)
        fetched += page.fetched
        if page.cursor is not None:
            stamp = parse_datetime(page.cursor, "cursor")
            assert stamp is not None
            cursors.append(stamp)
    return Page(
        records=list(latest.values()),
        rejects=rejects,
        cursor=iso(max(cursors)) if cursors else None,
        fetched=fetched,
        total=next((p.total for p in batch if p.total is not None), None),
        deleted=deleted,
    )


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
