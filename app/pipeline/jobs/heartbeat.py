"""A running job's heartbeat: its leases stay short and alive only while its process is.

A job holds leases (the compute lease; its source's sync lease) with a short TTL
(``QG_JOB_LEASE_SECONDS``, 60 s). While it runs, a thread renews them and stamps
``jobs.heartbeat_at`` every quarter of that TTL, each time in a transaction of its own. A
process that is killed stops beating: its leases expire within the TTL, and the orphan sweep
(:func:`app.pipeline.jobs.service.fail_orphans`) fails its job with the reason. A beat that
fails (the database is away) is logged once and tried again at the next tick; the job itself
decides whether it can go on.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.core.base import utcnow
from app.core.db import transaction
from app.pipeline.jobs import leases
from app.pipeline.jobs.models import Job

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats for one job until :meth:`stop`; ``hold``/``drop`` name the leases it renews."""

    def __init__(
        self, factory: sessionmaker[Session], job_id: int, holder: str, ttl: timedelta
    ) -> None:
        self.factory = factory
        self.job_id = job_id
        self.holder = holder
        self.ttl = ttl
        self.every = max(0.05, ttl.total_seconds() / 4)
        self._leases: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def hold(self, name: str) -> None:
        with self._lock:
            self._leases.add(name)

    def drop(self, name: str) -> None:
        with self._lock:
            self._leases.discard(name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.every + 5)

    def beat(self) -> None:
        """Renew the held leases and stamp the job, in one transaction."""
        with self._lock:
            names = sorted(self._leases)
        try:
            with transaction(self.factory) as session:
                for name in names:
                    if not leases.acquire(session, name, self.holder, self.ttl):
                        # Taken over after this process was thought dead: say so loudly;
                        # the job's own next write decides what happens.
                        log.warning("job %s lost its lease %s", self.job_id, name)
                session.execute(
                    update(Job).where(Job.id == self.job_id).values(heartbeat_at=utcnow())
                )
        except Exception as exc:  # the database is away: beat again at the next tick
            if not self._failing:
                log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
            self._failing = True
            return
        if self._failing:
            log.info("job %s: heartbeat restored", self.job_id)
        self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.beat()
