"""The scheduler: runs each source's sync chain on its schedule, in exactly one process.

* Schedules live in Quota Gap's own tables (``sources.schedule``, changed through the API).
  The leader reads them, builds an APScheduler job per source in an in-memory job store
  (never a shared one: two schedulers sharing APScheduler's store would both run every job),
  and rebuilds them when a source changes.
* Exactly one leader across processes and replicas: a lease row in the database, renewed
  every ``renew_every`` and valid for ``lease_ttl``. A process that dies stops renewing, and
  another takes over once the lease expires (within ``lease_ttl + renew_every``).
* Missed runs coalesce into one, with an explicit misfire grace time (APScheduler's default
  of one second is too tight for a busy worker); ``max_instances=1`` per source in memory,
  and the sync lease per source in the database (:mod:`app.pipeline.jobs.service`).
* A source that keeps failing backs off: after N failures in a row its runs are skipped
  until ``min(interval x 2^N, 1 day)`` has passed since the last one.
* A daily job recomputes, which closes finished periods (their final missed/achieved).
* Every few seconds the leader sends the webhook deliveries that are due (the outbox).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import transaction
from app.pipeline.jobs import leases
from app.pipeline.jobs import service as jobs_service
from app.sources.models import Source, SyncRun
from app.webhooks.dispatcher import Dispatcher

log = logging.getLogger(__name__)

LEADER_LEASE = "scheduler"
CLOSE_PERIODS_JOB = "close-periods"
DELIVER_WEBHOOKS_JOB = "deliver-webhooks"
DEFAULT_RESYNC_DAYS = 7


def trigger_for(schedule: dict[str, Any]) -> IntervalTrigger | CronTrigger | None:
    if schedule.get("cron"):
        return CronTrigger.from_crontab(str(schedule["cron"]), timezone=UTC)
    seconds = schedule.get("interval_seconds") or (schedule.get("interval_minutes") or 0) * 60
    return IntervalTrigger(seconds=int(seconds), timezone=UTC) if seconds else None


def resync_due(session: Session, *, source_id: int, now: datetime) -> bool:
    """Whether the source's next scheduled sync is a full resync (``app.pipeline.reconcile``):
    ``schedule.resync_every_days`` (7 unset, 0 never) since the last successful one, or since
    the first successful sync, which read everything too. Never before a first sync."""
    source = session.get(Source, source_id)
    if source is None:
        return False
    days = source.schedule.get("resync_every_days")
    days = DEFAULT_RESYNC_DAYS if days is None else int(days)
    if days <= 0:
        return False
    done = (SyncRun.source_id == source_id, SyncRun.status == "succeeded")
    last = session.scalar(
        select(func.max(SyncRun.finished_at)).where(*done, SyncRun.kind == "resync")
    ) or session.scalar(select(func.min(SyncRun.finished_at)).where(*done, SyncRun.kind == "sync"))
    if last is None:
        return False
    if last.tzinfo is None:  # SQLite hands naive UTC back
        last = last.replace(tzinfo=UTC)
    return now - last >= timedelta(days=days)


class Scheduler:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        holder: str | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.holder = holder or leases.holder_id()
        self.lease_ttl = timedelta(seconds=settings.scheduler_lease_seconds)
        self.renew_every = max(0.2, settings.scheduler_lease_seconds / 3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._aps: BackgroundScheduler | None = None
        self._signature: tuple[Any, ...] | None = None
        self._dispatcher: Dispatcher | None = None

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    # -- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._step_down()
        with transaction(self.session_factory) as session:
            leases.release(session, LEADER_LEASE, self.holder)

    def run_forever(self) -> None:
        """``quotagap worker``: lead (or wait to lead) until stopped (SIGTERM or Ctrl-C)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a database blip must not kill the scheduler thread
                log.exception("scheduler tick failed")
            self._stop.wait(self.renew_every)

    def tick(self) -> None:
        """One round: renew or take the lease; start, stop or refresh the schedules."""
        with transaction(self.session_factory) as session:
            leading = leases.acquire(session, LEADER_LEASE, self.holder, self.lease_ttl)
        if not leading:
            self._step_down()
            return
        if self._aps is None:
            self._take_over()
        # Jobs whose process died are failed within a tick of their heartbeat stopping.
        jobs_service.sweep(self.session_factory, self.settings)
        self._refresh()

    def _take_over(self) -> None:
        log.info("scheduler %s is now the leader", self.holder)
        self._aps = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(self.settings.scheduler_threads)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.settings.scheduler_misfire_grace_seconds,
            },
            timezone=UTC,
        )
        self._aps.add_job(
            self._close_periods, CronTrigger(hour=0, minute=15, timezone=UTC), id=CLOSE_PERIODS_JOB
        )
        self._dispatcher = Dispatcher(self.session_factory, self.settings)
        self._aps.add_job(
            self._dispatcher.run_once,
            IntervalTrigger(seconds=self.settings.webhook_dispatch_interval_seconds, timezone=UTC),
            id=DELIVER_WEBHOOKS_JOB,
        )
        self._signature = None
        self._aps.start()

    def _step_down(self) -> None:
        if self._aps is not None:
            log.info("scheduler %s is no longer the leader", self.holder)
            self._aps.shutdown(wait=True)
            self._aps = None
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None

    def _refresh(self) -> None:
        """Rebuild the per-source jobs when a schedule, or the set of sources, changed."""
        with self.session_factory() as session:
            sources = [
                (s.id, s.is_enabled, repr(sorted(s.schedule.items())))
                for s in session.scalars(
                    select(Source).where(Source.kind != "csv").order_by(Source.id)
                )
            ]
        signature = tuple(sources)
        if signature == self._signature or self._aps is None:
            return
        self._signature = signature
        wanted: set[str] = set()
        with self.session_factory() as session:
            for source_id, enabled, _ in sources:
                source = session.get(Source, source_id)
                trigger = trigger_for(source.schedule) if source and enabled else None
                if trigger is None:
                    continue
                job_id = f"source:{source_id}"
                wanted.add(job_id)
                self._aps.add_job(
                    self.run_source, trigger, id=job_id, args=[source_id], replace_existing=True
                )
        for job in self._aps.get_jobs():
            if job.id.startswith("source:") and job.id not in wanted:
                job.remove()

    # -- the jobs themselves

    def run_source(self, source_id: int) -> None:
        if not self.is_leader or self._backing_off(source_id):
            return
        with transaction(self.session_factory) as session:
            full = resync_due(session, source_id=source_id, now=utcnow())
            job = jobs_service.create(
                session=session,
                kind="sync",
                source_id=source_id,
                trigger="schedule",
                params={"resync": True} if full else None,
            )
        jobs_service.run(
            session_factory=self.session_factory,
            settings=self.settings,
            job_id=job.id,
            holder=self.holder,
        )

    def _backing_off(self, source_id: int) -> bool:
        with self.session_factory() as session:
            source = session.get(Source, source_id)
            if source is None or source.consecutive_failures < 2:
                return False
            last = session.scalar(
                select(SyncRun.started_at)
                .where(SyncRun.source_id == source_id)
                .order_by(SyncRun.id.desc())
            )
            trigger = trigger_for(source.schedule)
        interval = getattr(trigger, "interval", timedelta(hours=1))
        wait = min(interval * 2**source.consecutive_failures, timedelta(days=1))
        return last is not None and utcnow() - last < wait

    def _close_periods(self) -> None:
        with transaction(self.session_factory) as session:
            job = jobs_service.create(session=session, kind="compute", trigger="schedule")
        jobs_service.run(
            session_factory=self.session_factory,
            settings=self.settings,
            job_id=job.id,
            holder=self.holder,
        )
