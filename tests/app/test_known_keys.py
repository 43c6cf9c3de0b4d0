"""The polling fast path keeps keys and versions in memory while nothing is committed
(app.http.caching.KnownKeys, app.core.watch.CommitWatch), and sees every commit at once.

These tests need writes that really commit, as in production: each gets a database of its
own (the shared test database rolls every test back, and a rolled-back write is no commit).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, update

from app.auth import service as auth_service
from app.auth.models import ApiKey
from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.http.main import create_app
from app.pipeline.records import open_engine
from app.teams.models import Team
from tests.conftest import TEST_SECRET_KEY, _drop_postgres_database, _postgres_database

URL = "/api/v1/teams"


@pytest.fixture
def committed(backend: str, tmp_path: Any) -> Iterator[tuple[str, Engine]]:
    name = f"qg_keys_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'keys.db'}" if backend == "sqlite" else _postgres_database(name)
    engine = open_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()
    if backend != "sqlite":
        _drop_postgres_database(name)


def _key(engine: Engine, **options: Any) -> tuple[int, dict[str, str]]:
    with transaction(make_sessionmaker(engine)) as s:
        key, token = auth_service.create(session=s, role="admin", **options)
        s.flush()
        return key.id, {"Authorization": f"Bearer {token}"}


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """A PostgreSQL notification arrives a few milliseconds after its commit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_current_poll_asks_the_database_nothing_and_a_commit_is_seen(committed):
    url, engine = committed
    _, h = _key(engine)
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET_KEY), engine=engine)
    with TestClient(app) as client:
        # Entries may not expire by age here: only the watch can make the poll read again.
        app.state.known_keys.max_age = 3600
        assert _eventually(lambda: app.state.known_keys.watch.generation() is not None)
        first = client.get(URL, headers=h)
        assert first.status_code == 200
        polled = {**h, "If-None-Match": first.headers["etag"]}
        assert _eventually(lambda: client.get(URL, headers=polled).status_code == 304)
        assert client.get(URL, headers=polled).status_code == 304
        seen = _statements(engine)
        for _ in range(5):
            assert client.get(URL, headers=polled).status_code == 304
        assert seen == []  # answered from memory: no statement at all

        # A repeated GET without a tag is answered from memory too, with the same body.
        for _ in range(3):
            again = client.get(URL, headers=h)
            assert again.status_code == 200 and again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
        before = len(seen)
        assert client.get(URL, headers=h).status_code == 200
        assert len(seen) == before

        with transaction(make_sessionmaker(engine)) as s:  # another writer commits
            s.add(Team(name="New team"))
        assert _eventually(lambda: client.get(URL, headers=polled).status_code == 200)
        fresh = client.get(URL, headers=h)
        assert fresh.headers["etag"] != first.headers["etag"]
        assert "New team" in fresh.text


def test_a_revoked_key_is_refused_at_the_next_poll(committed):
    url, engine = committed
    key_id, h = _key(engine)
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET_KEY), engine=engine)
    with TestClient(app) as client:
        app.state.known_keys.max_age = 3600
        etag = client.get(URL, headers=h).headers["etag"]
        polled = {**h, "If-None-Match": etag}
        assert _eventually(lambda: client.get(URL, headers=polled).status_code == 304)
        with transaction(make_sessionmaker(engine)) as s:
            s.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        assert _eventually(lambda: client.get(URL, headers=polled).status_code == 401)
        assert client.get(URL, headers=polled).json()["error"]["message"] == "API key revoked"


def test_a_kept_key_still_expires(committed):
    url, engine = committed
    _, h = _key(engine, expires_at=utcnow() + timedelta(seconds=2))
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET_KEY), engine=engine)
    with TestClient(app) as client:
        app.state.known_keys.max_age = 3600
        etag = client.get(URL, headers=h).headers["etag"]
        polled = {**h, "If-None-Match": etag}
        assert client.get(URL, headers=polled).status_code == 304
        time.sleep(2.1)  # no commit in between: only the kept expiry can refuse it
        assert client.get(URL, headers=polled).status_code == 401
