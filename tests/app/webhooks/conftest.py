from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.alerts.models import Alert
from app.core.base import utcnow
from app.core.config import Settings
from app.webhooks import service as webhooks_service
from tests.app.webhooks.receiver import Receiver
from tests.conftest import _drop_postgres_database, _postgres_database

_subjects = itertools.count(1)


class Clock:
    """The dispatcher's clock, moved by the test: retries come due without waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start

    @property
    def now(self) -> datetime:
        # Started at first use, a little ahead of the wall clock: deliveries enqueued before
        # are due at once, however long the test took to set them up (a loaded machine).
        if self._now is None:
            self._now = utcnow() + timedelta(seconds=1)
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        self._now = value

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **kw: float) -> datetime:
        self.now += timedelta(seconds=seconds, **kw)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def loopback_settings(settings: Settings) -> Settings:
    """The test settings, with loopback destinations allowed and one sender thread (the
    test's session factory shares one connection, which threads must not)."""
    settings.webhook_allow_private_destinations = True
    settings.webhook_senders = 1
    return settings


def raise_alerts(
    session: Session,
    settings: Settings,
    count: int = 1,
    *,
    event_type: str = "target.missed",
    team_id: int | None = None,
) -> list[Alert]:
    """Alerts and their deliveries, written together as the alert evaluation writes them."""
    alerts = []
    for _ in range(count):
        n = next(_subjects)
        alerts.append(
            Alert(
                event_id=f"alrt_{uuid.uuid4().hex}",
                event_type=event_type,
                subject_type="rep",
                subject_id=n,
                team_id=team_id,
                metric="won_revenue",
                period="2026-02",
                status="missed",
                summary=f"Rep {n} missed won_revenue for 2026-02.",
                data={"actual": 100.0, "target": 1000.0},
            )
        )
    session.add_all(alerts)
    session.flush()
    webhooks_service.enqueue(session=session, settings=settings, alerts=alerts)
    return alerts


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own (file SQLite or a new PostgreSQL database), for tests whose
    processes or threads need real connections and real commits."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'webhooks.db'}"
        return
    name = f"qg_webhooks_{uuid.uuid4().hex[:8]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)
