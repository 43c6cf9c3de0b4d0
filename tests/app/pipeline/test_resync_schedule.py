"""When a scheduled sync is a full resync (app.pipeline.scheduler.resync_due)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.base import utcnow
from app.pipeline.scheduler import resync_due
from app.sources.models import Source, SyncRun


def _source(session, schedule: dict) -> Source:
    source = Source(kind="hubspot", name="hs", schedule=schedule)
    session.add(source)
    session.flush()
    return source


def _run(session, source: Source, kind: str, days_ago: float, status: str = "succeeded") -> None:
    at = utcnow() - timedelta(days=days_ago)
    session.add(
        SyncRun(source_id=source.id, kind=kind, status=status, started_at=at, finished_at=at)
    )
    session.flush()


def test_never_before_a_first_sync(session):
    source = _source(session, {"interval_minutes": 60})
    assert not resync_due(session, source_id=source.id, now=utcnow())
    _run(session, source, "sync", 30, status="failed")
    assert not resync_due(session, source_id=source.id, now=utcnow())


@pytest.mark.parametrize(
    ("schedule", "runs", "due"),
    [
        ({}, [("sync", 6.9)], False),  # the first sync read everything 6.9 days ago
        ({}, [("sync", 7.1), ("sync", 0.01)], True),  # every 7 days unless said otherwise
        ({}, [("sync", 30), ("resync", 2)], False),  # counted from the last resync
        ({}, [("sync", 30), ("resync", 8)], True),
        ({"resync_every_days": 1}, [("sync", 1.5)], True),
        ({"resync_every_days": 0}, [("sync", 300)], False),  # never
    ],
)
def test_due_every_n_days_since_the_last_full_read(session, schedule, runs, due):
    source = _source(session, {"interval_minutes": 60, **schedule})
    for kind, days_ago in runs:
        _run(session, source, kind, days_ago)
    assert resync_due(session, source_id=source.id, now=utcnow()) is due


def test_the_schedule_setting_is_validated(client, factory):
    h = factory.key("admin")
    body = {
        "kind": "hubspot",
        "name": "hs",
        "credentials": {"access_token": "x"},
        "schedule": {"interval_minutes": 60, "resync_every_days": -1},
    }
    r = client.post("/api/v1/sources", json=body, headers=h)
    assert r.status_code == 422
    assert "resync_every_days" in r.text
