"""The Alembic migrations and the ORM models describe the same schema, on both backends."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from app.core.migrate import alembic_config, upgrade
from app.pipeline.records import Base, open_engine
from tests.conftest import _drop_postgres_database, _postgres_database


@pytest.fixture
def fresh_url(backend, tmp_path):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"qg_mig_{uuid.uuid4().hex[:8]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


def test_migrated_schema_matches_models(fresh_url):
    engine = open_engine(fresh_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_compute_state_storage(fresh_url, backend, tmp_path):
    """On PostgreSQL the compute state is stored uncompressed, whether the schema comes from
    the migrations or from the models; SQLite has no such setting."""
    storages = []
    for build in ("migrations", "models"):
        if build == "migrations":
            url = fresh_url
        elif backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'models.db'}"
        else:
            url = _postgres_database(f"qg_models_{uuid.uuid4().hex[:8]}")
        engine = open_engine(url)
        if build == "migrations":
            upgrade(engine)
        else:
            Base.metadata.create_all(engine)
        with engine.connect() as conn:
            storages.append(_state_storage(conn))
        engine.dispose()
        if build == "models" and backend != "sqlite":
            _drop_postgres_database(url.rsplit("/", 1)[1])
    assert storages == (["e", "e"] if backend == "postgresql" else [None, None])


def _state_storage(conn: Connection) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    return conn.execute(
        text(
            "SELECT attstorage FROM pg_attribute"
            " WHERE attrelid = 'compute_state'::regclass AND attname = 'data'"
        )
    ).scalar_one()


def test_downgrade_to_base_and_back(fresh_url):
    engine = open_engine(fresh_url)
    upgrade(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    upgrade(engine)  # idempotent: already at head
    assert "deals" in inspect(engine).get_table_names()
    engine.dispose()


def test_single_head():
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1


def test_memberships_backfilled_from_each_reps_team(fresh_url):
    """0011 gives each rep on a team one open span, from their start date."""
    engine = open_engine(fresh_url)
    upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO teams (id, name, created_at, updated_at) VALUES (1, 'A', :t, :t)"),
            {"t": "2026-01-01 00:00:00+00:00"},
        )
        for rep_id, team, start in ((1, 1, "2025-03-01"), (2, None, None), (3, 1, None)):
            conn.execute(
                text(
                    "INSERT INTO reps (id, name, team_id, role, is_active, start_date,"
                    " created_at, updated_at) VALUES (:id, :n, :team, 'rep', true, :start, :t, :t)"
                ),
                {"id": rep_id, "n": f"r{rep_id}", "team": team, "start": start, "t": "2026-01-01"},
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT rep_id, team_id, valid_from, valid_to FROM team_memberships ORDER BY 1")
        ).all()
    engine.dispose()
    assert [(r[0], r[1], str(r[2]) if r[2] else None, r[3]) for r in rows] == [
        (1, 1, "2025-03-01", None),
        (3, 1, None, None),
    ]
