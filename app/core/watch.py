"""Has anything been committed since I last looked? A cheap answer for the polling fast path.

:class:`CommitWatch` hands out a *generation*: a number that changes whenever another
connection may have committed a write. What was read from the database under one generation
stays true while the generation is the same, so a caller can keep it in memory
(:class:`app.http.caching.KnownKeys`) instead of asking the database on every request.

* SQLite: ``PRAGMA data_version`` on a connection of the watch's own changes whenever another
  connection commits to the file (exact; a few microseconds, no table read).
* PostgreSQL: every commit that bumps a data version sends ``NOTIFY quotagap_versions``
  (:mod:`app.core.versions`); a daemon thread LISTENs on a connection of its own and moves the
  generation on each notification. While it is not listening (starting, reconnecting) the
  generation is None: callers read the database. Writes that bypass the service (psql) send
  nothing, so callers also bound the age of what they keep (``max_age`` of the cache).
* Anything else (an in-memory SQLite database, another dialect): always None.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

import psycopg
from sqlalchemy import Engine

from app.core.versions import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class CommitWatch:
    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._dsn: str | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            # Its own connection, outside the pool: data_version is per connection.
            self._sqlite = sqlite3.connect(url.database, check_same_thread=False)
        elif url.get_backend_name() == "postgresql":
            self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def generation(self) -> int | None:
        """The current generation, or None when the watch cannot tell."""
        with self._lock:  # (close may run meanwhile, on shutdown)
            if self._sqlite is not None:
                return int(self._sqlite.execute("PRAGMA data_version").fetchone()[0])
        return self._generation

    def start(self) -> None:
        """Start listening (PostgreSQL); until it listens, the generation is None."""
        if self._dsn is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="quotagap-commit-watch", daemon=True
            )
            self._thread.start()

    def _listen(self) -> None:
        assert self._dsn is not None
        counter = 0
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    counter += 1
                    self._generation = counter  # listening from here on: a new era
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            counter += 1
                            self._generation = counter
            except psycopg.Error as exc:
                log.warning("commit watch: %s; reconnecting", exc)
            self._generation = None  # missed notifications are possible: unknown again
            counter += 1
            self._stopped.wait(1.0)

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # it looks at the flag every second
        if self._sqlite is not None:
            with self._lock:
                self._sqlite.close()
                self._sqlite = None
