"""The outage: the receiver is down while alerts fire, the worker is killed and restarted
meanwhile, the receiver comes back. Every alert arrives, signed, under its own id; none is
lost; a repeat is only ever a retry of the same id. Real worker processes, a real receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core import secrets
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.pipeline.records import open_engine
from app.webhooks import service as webhooks_service
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from tests.app.webhooks.conftest import raise_alerts
from tests.app.webhooks.receiver import Receiver
from tests.conftest import TEST_SECRET_KEY

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _wait(condition: Callable[[], bool], what: str, logs: list[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def test_an_outage_with_a_restart_loses_nothing(fresh_url, tmp_path):
    engine = open_engine(fresh_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    settings = Settings(
        database_url=fresh_url, secret_key=TEST_SECRET_KEY, webhook_allow_private_destinations=True
    )
    receiver = Receiver()  # its port is chosen; nothing listens there yet
    secret = webhooks_service.new_secret()
    receiver.add("/hook", secret)
    with transaction(factory) as s:
        endpoint = WebhookEndpoint(
            url=receiver.url("/hook"),
            event_types=["*"],
            secret_encrypted=secrets.encrypt(settings, {"secret": secret}),
        )
        s.add(endpoint)
        s.flush()
        endpoint_id = endpoint.id
    with transaction(factory) as s:
        before_start = [a.event_id for a in raise_alerts(s, settings, 5)]

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QG_DATABASE_URL": fresh_url,
        "QG_SECRET_KEY": TEST_SECRET_KEY,
        "QG_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
        "QG_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.2",
        # About 1 s between attempts, for longer than the test can take.
        "QG_WEBHOOK_RETRY_SCHEDULE_SECONDS": json.dumps([0] + [1] * 300),
        "QG_SCHEDULER_LEASE_SECONDS": "1",
        # A claim left by the killed worker runs out after the timeout + 30 s.
        "QG_WEBHOOK_TIMEOUT_SECONDS": "5",
    }
    command = [sys.executable, "-c", "from app.cli import main; main()", "worker"]
    logs: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker{len(procs) + 1}.log"
        logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    def attempts(event_ids: list[str]) -> list[int]:
        with factory() as s:
            return list(
                s.scalars(
                    select(WebhookDelivery.attempts).where(
                        WebhookDelivery.message_id.in_(event_ids)
                    )
                )
            )

    try:
        # The first worker tries and fails (connection refused), again and again...
        first = start_worker()
        _wait(lambda: min(attempts(before_start)) >= 2, "the first worker's attempts", logs)
        # ...and is killed outright, mid-flight.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        tried_before_kill = sum(attempts(before_start))

        # Alerts keep firing while no worker runs.
        with transaction(factory) as s:
            while_down = [a.event_id for a in raise_alerts(s, settings, 5)]

        # A new worker takes over (the dead one's lease runs out) and keeps failing...
        start_worker()
        _wait(
            lambda: (
                min(attempts(while_down)) >= 1 and sum(attempts(before_start)) > tried_before_kill
            ),
            "the second worker's attempts",
            logs,
        )
        with transaction(factory) as s:
            while_restarted = [a.event_id for a in raise_alerts(s, settings, 5)]

        # ...until the receiver is back, still answering 503 to its first few requests.
        receiver.script("/hook", 503, 503, 503)
        receiver.start()

        def all_delivered() -> bool:
            with factory() as s:
                return set(s.scalars(select(WebhookDelivery.status))) == {"succeeded"}

        _wait(all_delivered, "every delivery to succeed", logs, timeout=150)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        receiver.stop()

    fired = before_start + while_down + while_restarted
    received = receiver.on("/hook")
    assert all(r.verified for r in received), [r.error for r in received if not r.verified]
    delivered = [r.webhook_id for r in received if 200 <= r.status < 300]
    # Every alert arrived, under its own id, and nothing else did.
    assert set(delivered) == set(fired) and len(set(fired)) == 15
    assert {r.webhook_id for r in received} == set(fired)
    # A repeat is a retry of the same message: the same body every time.
    bodies: dict[str | None, set[str]] = {}
    for r in received:
        bodies.setdefault(r.webhook_id, set()).add(r.body)
    assert all(len(b) == 1 for b in bodies.values())
    assert all(json.loads(next(iter(bodies[i])))["data"]["event_id"] == i for i in fired)
    # The 503s were retried under the same ids they were sent with.
    refused = Counter(r.webhook_id for r in received if r.status == 503)
    assert sum(refused.values()) == 3
    assert all(n == 1 for n in Counter(delivered).values()), Counter(delivered)

    with factory() as s:
        rows = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert sorted(d.message_id for d in rows) == sorted(fired)  # one per alert
        assert {d.status for d in rows} == {"succeeded"}
        assert {d.endpoint_id for d in rows} == {endpoint_id}
        successes = s.scalar(
            select(func.count())
            .select_from(DeliveryAttempt)
            .where(DeliveryAttempt.status_code == 200)
        )
        assert successes == 15
        # The restarted worker retried what the first had been trying since before the kill.
        first_batch = [d for d in rows if d.message_id in before_start]
        assert all(d.attempts > 2 for d in first_batch)
    engine.dispose()
