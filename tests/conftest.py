"""Shared fixtures: every storage and API test runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from ``QG_TEST_POSTGRES_URL`` (default: the local server with trust auth).
If it cannot be reached the tests ERROR rather than skip; ``QG_TEST_BACKENDS=sqlite`` is the
explicit way to run SQLite only.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.migrate import upgrade
from app.http.main import create_app
from app.pipeline.records import open_engine
from tests.factories import Factory

POSTGRES_ADMIN_URL = os.environ.get(
    "QG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = [b for b in os.environ.get("QG_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def _shared_dir() -> Path:
    """The workspace's read-only shared data (public datasets, recorded CRM responses)."""
    candidates = [
        os.environ.get("QG_SHARED_DIR"),
        Path(__file__).resolve().parents[2] / "shared",
        "/work/shared",
    ]
    for candidate in candidates:
        if candidate and Path(candidate, "data").is_dir():
            return Path(candidate)
    # Tests that need it then fail with a clear path, rather than being skipped.
    return Path(os.environ.get("QG_SHARED_DIR") or "../shared")


SHARED = _shared_dir()


def _postgres_database(tmp_name: str) -> str:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{tmp_name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{tmp_name}"'))
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + tmp_name


def _drop_postgres_database(tmp_name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{tmp_name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database on the test's backend: for a process of its own (a worker, a
    CLI killed mid-sync), or to compare with a fresh sync."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"qg_fresh_{uuid.uuid4().hex[:8]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name = f"qg_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = open_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """Each test runs inside one transaction that is rolled back at the end."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # Commits inside the code under test release savepoints; the outer transaction stays.
    return sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


# Fixed, so a subprocess started by a test (and a second import of this module) agrees on it.
TEST_SECRET_KEY = base64.urlsafe_b64encode(b"quotagap-tests-not-a-secret-key!").decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)


@pytest.fixture
def app(settings: Settings, engine: Engine, session_factory: sessionmaker[Session]) -> Any:
    # Jobs run inline: background threads cannot share the test's one connection.
    return create_app(
        settings, engine=engine, session_factory=session_factory, run_jobs_inline=True
    )


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def factory(session: Session) -> Factory:
    return Factory(session)


if os.environ.get("CI") == "true" and set(BACKENDS) != {"sqlite", "postgresql"}:
    raise RuntimeError("CI runs every storage test on both SQLite and PostgreSQL")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many tests ran on each backend, so a CI log shows both were exercised."""
    per_backend: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for backend in BACKENDS:
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid or f"-{backend}-" in nodeid:
                    counts = per_backend.setdefault(backend, {})
                    counts[outcome] = counts.get(outcome, 0) + 1
    for backend, counts in sorted(per_backend.items()):
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        terminalreporter.write_line(f"backend {backend}: {summary}")
