"""Jobs: the sync chain of a source (sync, recompute, alerts) and computes, run and recorded.

A job is written ``queued``, then run by the process that owns it: the scheduler's leader,
the API process for a manual run, or the CLI. Each stage and its progress are committed as
they happen, so ``GET /api/v1/jobs/{id}`` shows a sync's records and pages while it runs.
A job left ``running`` by a process that died is marked failed the next time a job runner
starts (see :func:`fail_orphans`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import transaction
from app.core.exceptions import NotFoundError
from app.pipeline.jobs import leases
from app.pipeline.jobs.models import Job, Lease
from app.sources.models import SyncRun

log = logging.getLogger(__name__)

# A sync renews its source lease on every page; a page never takes this long.
SYNC_LEASE_TTL = timedelta(minutes=2)
COMPUTE_LEASE = "compute"
COMPUTE_LEASE_TTL = timedelta(minutes=30)


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


def fail_orphans(session: Session) -> int:
    """Running jobs whose process is gone (its lease expired, or it held none) are failed."""
    live = {
        lease.holder for lease in session.scalars(select(Lease).where(Lease.expires_at >= utcnow()))
    }
    orphans = [
        j
        for j in session.scalars(select(Job).where(Job.status == "running"))
        if j.worker not in live
    ]
    for job in orphans:
        job.status, job.finished_at = "failed", utcnow()
        job.error = "interrupted: the process running it stopped"
    return len(orphans)


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
    _update(session_factory, job_id, status="running", started_at=utcnow(), worker=holder)
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
                holder,
                transport=transport,
                sleep=sleep,
                full=bool(params.get("resync")),
            )
            if result["sync"]["status"] == "failed":
                raise RuntimeError(result["sync"]["error"] or "sync failed")
        if params.get("compute", True):
            result["compute"] = _compute_stage(session_factory, settings, job_id, holder, params)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("job %s failed: %s", job_id, error)
    done: dict[str, Any] = {} if error else {"stage": "done"}  # a failure keeps its stage
    paused = result.get("sync", {}).get("status") == "paused"
    _update(
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


def _compute_stage(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    holder: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """One compute at a time: snapshots are versions, and two writers would interleave."""
    from app.performance import compute
    from app.pipeline import alerting

    with transaction(factory) as session:
        if not leases.acquire(session, COMPUTE_LEASE, holder, COMPUTE_LEASE_TTL):
            raise RuntimeError("another compute is running")
    _update(factory, job_id, stage="compute")
    try:
        with transaction(factory) as session:
            snap = compute.run(
                session=session,
                settings=settings,
                full=bool(params.get("full")),
                as_of=date.fromisoformat(params["as_of"]) if params.get("as_of") else None,
                trigger=f"job:{job_id}",
            )
            computed = {
                "snapshot": snap.id,
                "periods": len(snap.periods),
                "rows_written": snap.rows_written,
                "duration_ms": snap.duration_ms,
            }
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
        with transaction(factory) as session:
            leases.release(session, COMPUTE_LEASE, holder)


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
    holder: str,
    *,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None] | None,
    full: bool,
) -> dict[str, Any]:
    from app.pipeline import sync as engine

    name = sync_lease(source_id)
    with transaction(factory) as session:
        if not leases.acquire(session, name, holder, SYNC_LEASE_TTL):
            raise RuntimeError(f"a sync of source {source_id} is already running")
    _update(factory, job_id, stage="sync")

    def progress(run: SyncRun) -> None:
        with transaction(factory) as session:
            leases.acquire(session, name, holder, SYNC_LEASE_TTL)  # still alive: renew
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
        with transaction(factory) as session:
            leases.release(session, name, holder)
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
