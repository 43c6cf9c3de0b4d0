"""While another connection holds SQLite's write lock, the server keeps answering (issue 17).

A real server (uvicorn in a thread) on a file database, as users run it: the write lock is
held by a plain sqlite3 connection, as a sync or a compute in another process would hold it.
Behaviour, not timing: each read must answer well within the write's busy timeout, which it
could not do if anything on the event loop waited for the lock.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.auth import service as auth_service
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.http.main import create_app
from app.pipeline.records import open_engine
from app.teams.models import Team
from tests.conftest import TEST_SECRET_KEY

BUSY_TIMEOUT_MS = 4000
# Well under the busy timeout: a request stuck behind the lock could not answer in time.
QUICK = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    path = tmp_path / "lock.db"
    url = f"sqlite:///{path}"
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET_KEY,
        sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS,
        scheduler_enabled=False,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=1_000_000,
    )
    engine = open_engine(url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    upgrade(engine)
    with transaction(make_sessionmaker(engine)) as session:
        _, token = auth_service.create(session=session, role="admin")
        teams = [Team(name=f"T{i}") for i in range(9)]
        session.add_all(teams)
        session.flush()
        team_ids = [t.id for t in teams]
    port = _free_port()
    app = create_app(settings, engine=engine)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield {
        "base": f"http://127.0.0.1:{port}",
        "auth": {"Authorization": f"Bearer {token}"},
        "path": path,
        "teams": team_ids,
    }
    srv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN IMMEDIATE")
    return lock


def test_reads_and_bogus_keys_answer_while_a_write_waits_for_the_lock(server):
    base, auth = server["base"], server["auth"]
    lock = _hold_write_lock(server["path"])
    try:
        with ThreadPoolExecutor(2) as pool:
            # A write that must wait for the lock, then fail clearly once its timeout ends.
            team = server["teams"][0]
            waiting = pool.submit(
                httpx.patch,
                f"{base}/api/v1/teams/{team}",
                json={"name": "Renamed"},
                headers=auth,
                timeout=30,
            )
            time.sleep(0.3)  # it is now waiting
            with httpx.Client(base_url=base, timeout=QUICK) as client:
                assert client.get("/health").status_code == 200
                assert client.get("/api/v1/teams", headers=auth).status_code == 200
                bogus = {"Authorization": "Bearer qg_not_a_key"}
                r = client.patch(f"/api/v1/teams/{team}", json={"name": "x"}, headers=bogus)
                assert r.status_code == 401
            assert not waiting.done()  # the write still waits, off the event loop
            answer = waiting.result()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert answer.headers["Retry-After"]
    finally:
        lock.rollback()
        lock.close()


def test_eight_concurrent_writers_all_finish(server):
    base, auth = server["base"], server["auth"]

    def rename(i: int) -> int:
        team = server["teams"][1 + i]
        r = httpx.patch(
            f"{base}/api/v1/teams/{team}", json={"name": f"W{i}"}, headers=auth, timeout=60
        )
        return r.status_code

    lock = _hold_write_lock(server["path"])
    with ThreadPoolExecutor(8) as pool:
        results = [pool.submit(rename, i) for i in range(8)]
        time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=QUICK) as client:
            assert client.get("/health").status_code == 200  # while 8 writers queue
        lock.rollback()  # the lock goes: every writer gets its turn
        lock.close()
        assert [f.result() for f in results] == [200] * 8
