"""`quotagap compute` and `quotagap sync` run recorded jobs: the whole chain, with progress."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.alerts import service as alerts_service
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.demo.load import load_demo
from app.pipeline.jobs.models import Job
from app.pipeline.records import open_engine
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def _quotagap(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QG_DATABASE_URL": url, "QG_SECRET_KEY": TEST_SECRET_KEY}
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compute_runs_the_chain_as_a_recorded_job(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = open_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        load_demo(session=session, seed=5)
        alerts_service.default_rules(session=session)
    done = _quotagap(url, "compute", "--full")
    assert done.returncode == 0, done.stderr
    assert "snapshot 1:" in done.stdout
    assert "alerts:" in done.stdout and "from 7 rules" in done.stdout
    with factory() as session:
        (job,) = session.scalars(select(Job)).all()
    assert (job.kind, job.trigger, job.status, job.stage) == ("compute", "cli", "succeeded", "done")
    assert job.result["compute"]["alerts"]["rules"] == 7
    # A second compute raises nothing new.
    again = _quotagap(url, "compute")
    assert again.returncode == 0 and "alerts: 0 new" in again.stdout
    engine.dispose()


def test_a_failed_sync_exits_non_zero_and_says_why(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = _quotagap(url, "sync", "999")
    assert done.returncode == 1
    assert "failed" in done.stderr and "999" in done.stderr


def test_quarantine_replay_stores_the_records_of_an_owner_now_known(tmp_path):
    from app.pipeline import ingest
    from app.reps.models import Rep, RepIdentity
    from app.sources.models import QuarantinedRecord, Source

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = open_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    record = {
        "external_id": "a1",
        "owner_external_id": "77",
        "type": "call",
        "subject": "Intro",
        "occurred_at": "2026-10-01T15:00:00+00:00",
        "deal_external_id": None,
        "source_modified_at": "2026-10-01T15:00:00+00:00",
        "is_deleted": False,
    }
    with transaction(factory) as session:
        source = Source(kind="hubspot", name="crm")
        rep = Rep(name="Late Owner")
        session.add_all([source, rep])
        session.flush()
        ingest.quarantine(session, source.id, "activity", [("a1", "unknown owner '77'", record)])
        session.add(RepIdentity(rep_id=rep.id, source_id=source.id, external_id="77"))
        source_id = source.id

    done = _quotagap(url, "quarantine", "replay", str(source_id))

    assert done.returncode == 0, done.stderr
    assert "replayed 1 record(s)" in done.stdout and "0 still quarantined" in done.stdout
    with factory() as session:
        assert session.scalar(select(QuarantinedRecord.id)) is None
    assert _quotagap(url, "quarantine", "replay", "999").returncode == 1
    engine.dispose()


def test_sync_full_resyncs_and_says_what_left_the_crm(tmp_path, monkeypatch):
    from app.core import secrets
    from app.core.config import Settings
    from app.demo.sandbox import sandbox_state
    from app.sources.models import Source
    from connectors import registry
    from connectors.sandbox.common import ServerThread

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = open_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    state = sandbox_state(seed=3, teams=1, reps_per_team=2, months=2)
    monkeypatch.setenv("QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS", "true")  # a loopback sandbox
    settings = Settings(database_url=url, secret_key=TEST_SECRET_KEY)
    with ServerThread(registry.sandbox_app("pipedrive", state, page_size=100)) as server:
        with transaction(factory) as session:
            source = Source(
                kind="pipedrive",
                name="pd",
                base_url=server.url,
                credentials_encrypted=secrets.encrypt(settings, {"api_token": "sandbox-token"}),
            )
            session.add(source)
            session.flush()
            sid = str(source.id)
        assert _quotagap(url, "sync", sid, "--no-compute").returncode == 0
        deals = state.data.deals
        with state.lock:
            deals["is_purged"] = False
            deals.loc[deals.index[:2], "is_purged"] = True
            state.version += 1
        done = _quotagap(url, "sync", sid, "--no-compute", "--full")
    assert done.returncode == 0, done.stderr
    assert "resync: 2 deals no longer in the CRM, marked deleted" in done.stdout
    with factory() as session:
        job = session.scalars(select(Job).order_by(Job.id.desc())).first()
    assert job.params == {"compute": False, "resync": True}
    assert job.result["sync"]["kind"] == "resync"
    engine.dispose()
