"""Data versions on a real engine (no shared test connection): every committed write counts."""

from __future__ import annotations

from sqlalchemy import select, update

from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.core.versions import DataVersion
from app.pipeline.records import open_engine
from app.reps.models import Rep


def _version(factory, scope: str) -> int:
    with factory() as s:
        return int(s.scalar(select(DataVersion.version).where(DataVersion.scope == scope)))


def test_writes_bump_their_scope_once_committed(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'v.db'}")
    upgrade(engine)
    factory = make_sessionmaker(engine)
    records, config = _version(factory, "records"), _version(factory, "config")
    with transaction(factory) as s:
        s.add(Rep(name="Ann", email="ann@example.com"))  # left for the commit to flush
    assert _version(factory, "records") == records + 1
    with transaction(factory) as s:
        s.execute(update(Rep).values(name="Ann Lee"))  # Core, no ORM flush at all
    assert _version(factory, "records") == records + 2
    with factory() as s:  # rolled back: nothing happened, nothing counts
        s.add(Rep(name="Bob", email="bob@example.com"))
        s.flush()
        s.rollback()
    with transaction(factory) as s:
        s.scalars(select(Rep)).all()  # a read bumps nothing
    assert _version(factory, "records") == records + 2
    assert _version(factory, "config") == config
    engine.dispose()
