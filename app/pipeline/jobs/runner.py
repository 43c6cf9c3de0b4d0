"""Runs jobs in the background of the API process (manual runs answered with 202)."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.pipeline.jobs import service

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self, session_factory: sessionmaker[Session], settings: Settings, *, inline: bool = False
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        # Inline: run in the caller's thread (tests bound to one connection, the CLI).
        self.inline = inline
        self.pool = None if inline else ThreadPoolExecutor(max_workers=2, thread_name_prefix="job")

    def sweep(self) -> int:
        """Fail the jobs whose process died (``service.fail_orphans``)."""
        return service.sweep(self.session_factory, self.settings)

    def submit(self, job_id: int) -> Future[object] | None:
        if self.pool is None:
            self._run(job_id)
            return None
        return self.pool.submit(self._run, job_id)

    def _run(self, job_id: int) -> None:
        try:
            service.run(session_factory=self.session_factory, settings=self.settings, job_id=job_id)
        except Exception:  # the job records its own failure; this is the last resort
            log.exception("job %s crashed", job_id)

    def shutdown(self) -> None:
        if self.pool is not None:
            # Running jobs finish their current page (each is its own transaction).
            self.pool.shutdown(wait=True, cancel_futures=True)
