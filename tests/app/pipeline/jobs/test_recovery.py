"""The job machinery recovers by itself: short leases kept alive by a heartbeat, dead holders
recognised, orphaned jobs failed with their real reason."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.core.base import utcnow
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.demo.load import load_demo
from app.pipeline.jobs import leases, service
from app.pipeline.jobs.heartbeat import Heartbeat
from app.pipeline.jobs.models import Job, Lease
from app.pipeline.records import open_engine
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[4]
HOST = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_of_a_dead_process_of_this_host_is_taken_at_once(session):
    dead = f"{HOST}:{dead_pid()}"
    assert leases.acquire(session, "compute", dead, timedelta(minutes=30))
    assert leases.acquire(session, "compute", "me", timedelta(minutes=1))
    assert session.get(Lease, "compute").holder == "me"


def test_a_lease_of_a_live_process_or_of_another_host_is_not(session):
    alive = f"{HOST}:{os.getpid()}"
    assert leases.acquire(session, "compute", alive, timedelta(minutes=1))
    assert not leases.acquire(session, "compute", "me", timedelta(minutes=1))
    assert leases.acquire(session, "sync:1", "elsewhere:1", timedelta(minutes=1))
    assert not leases.acquire(session, "sync:1", "me", timedelta(minutes=1))


def test_a_heartbeat_keeps_short_leases_alive_and_they_lapse_when_it_stops(
    session_factory, session
):
    with transaction(session_factory) as s:
        job = service.create(session=s, kind="compute")
        job_id = job.id
        assert leases.acquire(s, "compute", "worker-a", timedelta(seconds=0.4))
    beat = Heartbeat(session_factory, job_id, "worker-a", timedelta(seconds=0.4))
    beat.hold("compute")
    beat.start()
    time.sleep(1.0)  # 2.5 TTLs: alive only because it was renewed
    with session_factory() as s:
        assert leases.held(s, "compute").holder == "worker-a"
        stamped = s.get(Job, job_id).heartbeat_at
        assert stamped is not None
    beat.stop()
    time.sleep(0.5)
    with transaction(session_factory) as s:
        assert leases.acquire(s, "compute", "worker-b", timedelta(seconds=10))


def _running(session, worker: str, beat_age: float | None) -> Job:
    job = service.create(session=session, kind="compute")
    job.status, job.worker, job.started_at = "running", worker, utcnow()
    job.heartbeat_at = None if beat_age is None else utcnow() - timedelta(seconds=beat_age)
    session.flush()
    return job


def test_orphans_are_failed_by_their_heartbeat_with_the_real_reason(session):
    ttl = timedelta(seconds=60)
    silent = _running(session, "elsewhere:7", beat_age=120)
    killed = _running(session, f"{HOST}:{dead_pid()}", beat_age=1)
    alive = _running(session, "elsewhere:8", beat_age=5)
    # Its own process holds leases (a leftover): no longer a reason to think it alive.
    leases.acquire(session, "sync:3", "elsewhere:7", timedelta(minutes=5))
    assert service.fail_orphans(session, lease_ttl=ttl) == 2
    assert (silent.status, killed.status, alive.status) == ("failed", "failed", "running")
    assert "no heartbeat from elsewhere:7" in silent.error
    assert "is gone" in killed.error and killed.worker in killed.error


def _quotagap(url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "QG_DATABASE_URL": url,
        "QG_SECRET_KEY": TEST_SECRET_KEY,
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# A compute that never ends on its own, run as `quotagap compute` runs it: the child is killed
# while it holds the compute lease, deterministically, whatever the machine's speed.
_STUCK_COMPUTE = """
import time
from app.performance import compute
compute.run = lambda **_: time.sleep(3600)
from app.cli import main
main()
"""


@pytest.mark.slow
def test_after_a_sigkill_mid_compute_the_next_compute_runs_at_once(fresh_url):
    engine = open_engine(fresh_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as s:
        load_demo(session=s, seed=5)
    env = {
        **os.environ,
        "QG_DATABASE_URL": fresh_url,
        "QG_SECRET_KEY": TEST_SECRET_KEY,
        "PYTHONPATH": str(ROOT),
    }
    first = subprocess.Popen(
        [sys.executable, "-c", _STUCK_COMPUTE, "compute"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with factory() as s:
            if s.scalar(select(Job.id).where(Job.stage == "compute")) is not None:
                break
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    with factory() as s:
        assert leases.held(s, service.COMPUTE_LEASE) is not None  # killed holding it

    started = time.monotonic()
    second = _quotagap(fresh_url, "compute")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "snapshot" in out
    with factory() as s:
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
    assert jobs[0].status == "failed" and "is gone" in jobs[0].error
    assert jobs[1].status == "succeeded"
    # The dead process's lease was taken at once, not after its TTL.
    assert time.monotonic() - started < 60
    engine.dispose()
