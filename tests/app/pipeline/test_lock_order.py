"""One lock order for the change tables: a sync page and a compute never deadlock."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import text

from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.performance.marks import mark_dirty
from app.pipeline import ingest
from app.pipeline.records import open_engine


@pytest.mark.slow
def test_a_sync_page_and_a_compute_lock_the_change_tables_in_one_order(backend, fresh_url):
    """The interleaving that deadlocked (3 of 24 computes during a sync): a sync page writes a
    deal change; a compute then locks dirty_days and deal_changes; the page then marks its days.
    Both must finish, one after the other."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: no lock order to get wrong")
    engine = open_engine(fresh_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    changed, computing, errors = threading.Event(), threading.Event(), []

    def sync_page() -> None:
        try:
            with transaction(factory) as session:
                session.execute(text("SET LOCAL lock_timeout = '20s'"))
                ingest.record_changes(session, 1, {"X1": {"existed": False}})
                changed.set()
                computing.wait(10)
                threading.Event().wait(0.5)  # the compute is now waiting on its LOCK
                mark_dirty(session, {(date(2026, 11, 3), 1)}, kind="deal")
        except Exception as exc:
            errors.append(exc)

    def compute() -> None:
        changed.wait(10)
        try:
            with transaction(factory) as session:
                session.execute(text("SET LOCAL lock_timeout = '20s'"))
                computing.set()
                session.execute(text("LOCK TABLE dirty_days, deal_changes IN EXCLUSIVE MODE"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync_page), threading.Thread(target=compute)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.dispose()
    assert not errors, errors


class _Conflict(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


def test_a_transaction_aborted_for_a_deadlock_is_run_again_a_bounded_number_of_times():
    from sqlalchemy.exc import DBAPIError

    from app.core.db import retry_conflicts

    calls: list[int] = []

    def deadlocked_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError("COMMIT", {}, _Conflict("40P01"))
        return "done"

    assert retry_conflicts(deadlocked_once) == "done" and len(calls) == 2

    def always(code: str):
        def work() -> None:
            calls.append(1)
            raise DBAPIError("COMMIT", {}, _Conflict(code))

        return work

    calls.clear()
    with pytest.raises(DBAPIError):
        retry_conflicts(always("40001"), attempts=3)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(DBAPIError):
        retry_conflicts(always("23505"))  # a unique violation is a bug, not a conflict
    assert len(calls) == 1
