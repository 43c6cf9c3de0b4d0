"""The database goes away and comes back: clear 503s meanwhile, recovery without a restart."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient

from app.auth import service as auth_service
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.http.main import create_app
from app.pipeline.records import open_engine

pytestmark = [pytest.mark.slow]


class Proxy:
    """A TCP relay to the database that can be cut (every connection reset, new ones refused)
    and restored: the database stopped and started again, as an operator would see it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.conns = []

    def restore(self) -> None:
        self.up = True


@pytest.fixture
def outage(backend, fresh_url) -> Iterator[tuple[TestClient, Proxy, str]]:
    if backend != "postgresql":
        pytest.skip("a server that can go away: PostgreSQL")
    parts = urlsplit(fresh_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    direct = open_engine(fresh_url)
    upgrade(direct)
    with transaction(make_sessionmaker(direct)) as s:
        _, key = auth_service.create(session=s, role="admin", name="ops")
    from app.core.config import Settings
    from tests.conftest import TEST_SECRET_KEY

    settings = Settings(database_url=via, secret_key=TEST_SECRET_KEY, scheduler_enabled=False)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, proxy, key
    direct.dispose()


def test_while_the_database_is_away_requests_get_a_clear_503_then_recover(outage, caplog):
    client, proxy, _ = outage
    assert client.get("/api/v1/reps").status_code == 200
    proxy.cut()
    answers = [client.get("/api/v1/reps", params={"limit": 10 + i}) for i in range(5)]
    for r in answers:
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert int(r.headers["Retry-After"]) >= 1
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "database_unavailable"
    assert client.get("/health/live").status_code == 200  # the process itself is fine
    logged = [r for r in caplog.records if "database" in r.getMessage().lower()]
    assert len(logged) <= 2, [r.getMessage() for r in logged]  # once per outage, not per request
    proxy.restore()
    assert client.get("/api/v1/reps", params={"limit": 99}).status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_ready_waits_for_pending_migrations(tmp_path):
    from app.core.config import Settings
    from tests.conftest import TEST_SECRET_KEY

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_engine(url)
    upgrade(old, "0015")  # the code is ahead of the database
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET_KEY), engine=old)
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "quotagap migrate" in ready.json()["error"]["message"]
        assert client.get("/health").status_code == 503
        assert client.get("/health/live").status_code == 200
        upgrade(old)
        assert client.get("/health/ready").json() == {"status": "ok"}
    old.dispose()
