"""Jobs: the sync chain of a source (sync, recompute, alerts) and computes, run and recorded.

A job is written ``queued``, then run by the process that owns it: the scheduler's leader,
the API process for a manual run, or the CLI. Each stage and its progress are committed as
they happen, so ``GET /api/v1/jobs/{id}`` shows a sync's records and pages while it runs.
A running job's leases are short and renewed by its heartbeat (``app.pipeline.jobs.heartbeat``):
one left ``running`` by a process that died is failed, with the reason, by the next sweep
(:func:`fail_orphans`: every job runner at start, the scheduler's leader on every tick).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import retry_conflicts, retry_while_unavailable, transaction
from app.core.exceptions import NotFoundError
from app.pipeline.jobs import leases
from app.pipeline.jobs.heartbeat import Heartbeat
from app.pipeline.jobs.models import Job
from app.sources.models import SyncRun

log = logging.getLogger(__name__)

COMPUTE_LEASE = "compute"


def lease_ttl(settings: Settings) -> timedelta:
    """How long a job's leases live without a heartbeat (``app.pipeline.jobs.heartbeat``)."""
    return timedelta(seconds=settings.job_lease_seconds)


def sync_lease(source_id: int) -> str:
    return f"sync:{source_id}"


def create(
    *,
    session: Session,
    kind: str,
    source_id: int | None = None,
    trigger: str = "manual",
    params: dict[str, Any] | None = None,
) -> Job:
    job = Job(kind=kind, source_id=source_id, trigger=trigger, params=params or {}, status="queued")
    session.add(job)
    session.flush()
    return job


def get(*, session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def query(
    *, kind: str | None = None, status: str | None = None, source_id: int | None = None
) -> Select[Job]:
    stmt = select(Job)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status)
    if source_id is not None:
        stmt = stmt.where(Job.source_id == source_id)
    return stmt


def fail_orphans(session: Session, *, lease_ttl: timedelta) -> int:
    """Fail the running jobs whose process is gone, with the reason: a process of this host
    that no longer runs (killed, crashed), or no heartbeat for longer than ``lease_ttl`` (the
    process stopped, or lost the database). Every job runner sweeps at start; the scheduler's
    leader on every tick. Returns how many were failed."""
    now = utcnow()
    orphans = 0
    for job in session.scalars(select(Job).where(Job.status == "running")):
        last = _aware(job.heartbeat_at or job.started_at or job.created_at)
        if leases.dead_here(job.worker):
            reason = f"interrupted: its process {job.worker} is gone (killed or crashed)"
        elif job.status == "running" and now - last > lease_ttl:
            reason = (
                f"interrupted: no heartbeat from {job.worker} since {last:%Y-%m-%d %H:%M:%S} "
                "UTC (the process stopped, or lost the database)"
            )
        else:
            continue
        job.status, job.finished_at, job.error = "failed", now, reason
        orphans += 1
    return orphans


def sweep(factory: sessionmaker[Session], settings: Settings) -> int:
    """:func:`fail_orphans` in a transaction of its own; a failure is logged, not raised (a
    sweep must never stop a process from starting)."""
    try:
        with transaction(factory) as session:
            return fail_orphans(session, lease_ttl=lease_ttl(settings))
    except Exception as exc:
        log.warning("orphan sweep failed: %s", exc)
        return 0


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _update(factory: sessionmaker[Session], job_id: int, **values: Any) -> None:
    with transaction(factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def run(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    holder: str | None = None,
) -> Job:
    """Run a queued job to its end (succeeded, paused on the CRM's API budget, or failed) in
    this process; ``holder`` names the process in leases and in ``Job.worker``."""
    holder = holder or leases.holder_id()
    with session_factory() as session:
        job = get(session=session, job_id=job_id)
        kind, source_id, params = job.kind, job.source_id, dict(job.params)
    now = utcnow()
    _update(
        session_factory, job_id, status="running", started_at=now, heartbeat_at=now, worker=holder
    )
    beat = Heartbeat(session_factory, job_id, holder, lease_ttl(settings)).start()
    error: str | None = None
    result: dict[str, Any] = {}
    try:
        if kind == "sync":
            assert source_id is not None
            result["sync"] = _sync_stage(
                session_factory,
                settings,
                job_id,
                source_id,
                beat,
                transport=transport,
                sleep=sleep,
                full=bool(params.get("resync")),
            )
            if result["sync"]["status"] == "failed":
                raise RuntimeError(result["sync"]["error"] or "sync failed")
        if params.get("compute", True):
            result["compute"] = _compute_stage(session_factory, settings, job_id, beat, params)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("job %s failed: %s", job_id, error)
    finally:
        beat.stop()
    done: dict[str, Any] = {} if error else {"stage": "done"}  # a failure keeps its stage
    paused = result.get("sync", {}).get("status") == "paused"
    _final_write(
        session_factory,
        job_id,
        status="failed" if error else "paused" if paused else "succeeded",
        error=error or (result["sync"]["error"] if paused else None),
        finished_at=utcnow(),
        result=result,
        **done,
    )
    with session_factory() as session:
        return get(session=session, job_id=job_id)


def _final_write(factory: sessionmaker[Session], job_id: int, **values: Any) -> None:
    """The job's outcome, tried again while the database is away."""
    retry_while_unavailable(
        lambda: _update(factory, job_id, **values), what=f"job {job_id}: its outcome"
    )


def _compute_stage(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    beat: Heartbeat,
    params: dict[str, Any],
) -> dict[str, Any]:
    """One compute at a time: snapshots are versions, and two writers would interleave."""
    from app.performance import compute
    from app.pipeline import alerting

    with transaction(factory) as session:
        if not leases.acquire(session, COMPUTE_LEASE, beat.holder, beat.ttl):
            raise RuntimeError("another compute is running")
    beat.hold(COMPUTE_LEASE)
    _update(factory, job_id, stage="compute")
    try:

        def one_compute() -> dict[str, Any]:
            with transaction(factory) as session:
                snap = compute.run(
                    session=session,
                    settings=settings,
                    full=bool(params.get("full")),
                    as_of=date.fromisoformat(params["as_of"]) if params.get("as_of") else None,
                    trigger=f"job:{job_id}",
                )
                return {
                    "snapshot": snap.id,
                    "periods": len(snap.periods),
                    "rows_written": snap.rows_written,
                    "duration_ms": snap.duration_ms,
                }

        computed = retry_conflicts(one_compute)
        # Still under the compute lease: two evaluations of one snapshot must not race.
        _update(factory, job_id, stage="alerts")
        with transaction(factory) as session:
            found = alerting.evaluate(session=session, settings=settings)
        return {
            **computed,
            "alerts": {
                "rules": found.rules,
                "candidates": found.candidates,
                "created": len(found.alerts),
                "updated": len(found.updated),
                "resolved": len(found.resolved),
                "deliveries": found.deliveries,
            },
        }
    finally:
        beat.drop(COMPUTE_LEASE)
        with transaction(factory) as session:
            leases.release(session, COMPUTE_LEASE, beat.holder)


def sync_percent(details: dict[str, Any]) -> float | None:
    """How far a sync is, where the CRM says how many records its queries match.

    Streams run one after the other: percent = 100 x (finished streams + the current stream's
    fetched / total) / streams. None while the current stream's total is unknown (HubSpot and
    Pipedrive do not say; Salesforce's ``totalSize`` does).
    """
    fetched: dict[str, int] = details.get("streams", {})
    totals: dict[str, int] = details.get("totals", {})
    count = int(details.get("stream_count") or 0)
    if not fetched or not count:
        return None
    current = list(fetched)[-1]
    total = totals.get(current)
    if total is None:
        return None
    share = min(1.0, fetched[current] / total) if total else 1.0
    return round(100.0 * (len(fetched) - 1 + share) / count, 1)


def _sync_stage(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    source_id: int,
    beat: Heartbeat,
    *,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None] | None,
    full: bool,
) -> dict[str, Any]:
    from app.pipeline import sync as engine

    name = sync_lease(source_id)
    with transaction(factory) as session:
        if not leases.acquire(session, name, beat.holder, beat.ttl):
            raise RuntimeError(f"a sync of source {source_id} is already running")
    beat.hold(name)
    _update(factory, job_id, stage="sync")

    def progress(run: SyncRun) -> None:
        with transaction(factory) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    progress={
                        "records": run.fetched,
                        "pages": run.pages,
                        "inserted": run.inserted,
                        "updated": run.updated,
                        "quarantined": run.quarantined,
                        "streams": run.details.get("streams", {}),
                        "totals": run.details.get("totals", {}),
                        "percent": sync_percent(run.details),
                    }
                )
            )

    try:
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        sync_run = engine.run_sync(
            session_factory=factory,
            settings=settings,
            source_id=source_id,
            transport=transport,
            on_page=progress,
            full=full,
            **kwargs,
        )
    finally:
        beat.drop(name)
        with transaction(factory) as session:
            leases.release(session, name, beat.holder)
    return {
        "run": sync_run.id,
        "kind": sync_run.kind,
        "status": sync_run.status,
        "error": sync_run.error,
        "fetched": sync_run.fetched,
        "inserted": sync_run.inserted,
        "updated": sync_run.updated,
        "deleted": sync_run.deleted,
        "quarantined": sync_run.quarantined,
        "pages": sync_run.pages,
        "notices": sync_run.details.get("notices", []),
        "reconciled": sync_run.details.get("reconciled", {}),
    }
