"""The scheduler on real databases and real processes."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from app.alerts.models import Alert, AlertRule
from app.core import secrets
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.deals.models import Deal
from app.demo.sandbox import sandbox_state
from app.performance.models import Snapshot
from app.pipeline.jobs.models import Job, Lease
from app.pipeline.records import open_engine
from app.pipeline.scheduler import LEADER_LEASE, Scheduler
from app.sources.models import Source
from app.webhooks.models import WebhookEndpoint
from connectors import registry
from connectors.sandbox.common import ServerThread
from tests.conftest import TEST_SECRET_KEY

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
DEMO = {"seed": 4, "teams": 1, "reps_per_team": 3, "months": 2}


@pytest.fixture
def sandbox():
    with ServerThread(
        registry.sandbox_app("salesforce", sandbox_state(**DEMO), page_size=500)
    ) as server:
        yield server.url


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that verifies every signature."""
    got: list[tuple[str, dict]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        body = (await request.body()).decode()
        got.append(
            (request.headers["webhook-id"], Webhook(SECRET).verify(body, dict(request.headers)))
        )
        return {}

    with ServerThread(app) as server:
        yield server.url + "/hook", got


SECRET = "whsec_" + base64.b64encode(b"scheduler-test-secret-0123456789").decode()


def _setup(url: str, sandbox_url: str, schedule: dict) -> tuple:
    engine = open_engine(url)
    upgrade(engine)
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET_KEY,
        scheduler_lease_seconds=2,
        webhook_dispatch_interval_seconds=0.2,
        webhook_allow_private_destinations=True,
        source_allow_private_destinations=True,  # the sandbox CRM listens on loopback
    )
    factory = make_sessionmaker(engine)
    with transaction(factory) as s:
        source = Source(
            kind="salesforce",
            name="sf",
            base_url=sandbox_url,
            schedule=schedule,
            credentials_encrypted=secrets.encrypt(settings, {"access_token": "sandbox-token"}),
        )
        s.add(source)
        s.flush()
        source_id = source.id
    return engine, settings, factory, source_id


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_chain_runs_on_its_own_and_schedule_changes_apply(fresh_url, sandbox, receiver):
    engine, settings, factory, source_id = _setup(fresh_url, sandbox, {"interval_seconds": 1})
    hook_url, received = receiver
    with transaction(factory) as s:
        # Every won deal of this month or the last is a "big win": the chain must raise some.
        s.add(AlertRule(name="wins", event_type="deal.big_win", params={"min_amount": 1}))
        s.add(
            WebhookEndpoint(
                url=hook_url,
                event_types=["deal.big_win"],
                secret_encrypted=secrets.encrypt(settings, {"secret": SECRET}),
            )
        )
    scheduler = Scheduler(factory, settings, holder="test:1")
    scheduler.start()
    try:

        def done() -> list[Job]:
            with factory() as s:
                return list(
                    s.scalars(
                        select(Job)
                        .where(Job.status == "succeeded", Job.trigger == "schedule")
                        .order_by(Job.id)
                    )
                )

        _wait(lambda: len(done()) >= 2)
        job = done()[0]
        assert (job.kind, job.source_id, job.worker) == ("sync", source_id, "test:1")
        assert job.result["sync"]["inserted"] > 50 and job.result["compute"]["snapshot"]
        # sync -> compute -> alerts: the first run raised the wins, later runs nothing new
        assert job.result["compute"]["alerts"]["created"] > 0
        assert done()[1].result["compute"]["alerts"]["created"] == 0
        with factory() as s:
            event_ids = set(s.scalars(select(Alert.event_id)))
        assert len(event_ids) == job.result["compute"]["alerts"]["created"]
        # ... and the leader's dispatcher delivered each, signed, under the alert's id
        _wait(lambda: {i for i, _ in received} >= event_ids)
        assert all(body["type"] == "deal.big_win" for _, body in received)
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Deal)) > 0
            assert s.scalar(select(func.count()).select_from(Snapshot)) >= 2
            assert s.get(Lease, LEADER_LEASE).holder == "test:1"
        # disabling the source through its row stops its runs at the next refresh
        with transaction(factory) as s:
            s.get(Source, source_id).is_enabled = False
        time.sleep(2.5)
        with factory() as s:
            before = s.scalar(select(func.count()).select_from(Job))
        time.sleep(2.5)
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == before
    finally:
        scheduler.stop()
    with factory() as s:
        assert s.get(Lease, LEADER_LEASE) is None  # released on a clean stop
        history = s.scalar(select(func.count()).select_from(Job))
    # a restart keeps the schedules (they live in the sources table) and the job history
    with transaction(factory) as s:
        s.get(Source, source_id).is_enabled = True
    restarted = Scheduler(factory, settings, holder="test:2")
    restarted.start()
    try:
        _wait(lambda: any(j.worker == "test:2" and j.status == "succeeded" for j in done()))
    finally:
        restarted.stop()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Job)) > history
    engine.dispose()


def test_a_second_scheduler_waits_and_takes_over_from_a_dead_leader(fresh_url, sandbox):
    """Two real worker processes on one database: one leads; SIGKILL it, the other leads."""
    engine, _, factory, _ = _setup(fresh_url, sandbox, {"interval_seconds": 1})
    env = {
        **os.environ,
        "QG_DATABASE_URL": fresh_url,
        "QG_SECRET_KEY": TEST_SECRET_KEY,
        "QG_SCHEDULER_LEASE_SECONDS": "2",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-c", "from app.cli import main; main()", "worker"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:

        def holders() -> set[str]:
            with factory() as s:
                return {
                    w for w in s.scalars(select(Job.worker).where(Job.trigger == "schedule")) if w
                }

        _wait(lambda: len(holders()) >= 1, timeout=60)
        time.sleep(3)
        first = holders()
        assert len(first) == 1  # only the leader runs jobs
        leader_pid = int(next(iter(first)).rsplit(":", 1)[1])
        leader = next(p for p in procs if p.pid == leader_pid)
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        killed_at = time.monotonic()
        _wait(lambda: len(holders()) == 2, timeout=30)
        took_over_in = time.monotonic() - killed_at
        assert took_over_in < 2 + 10  # lease (2 s) + renewal + a run's start
        with factory() as s:
            lease = s.get(Lease, LEADER_LEASE)
            assert lease.holder != next(iter(first))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
    engine.dispose()
