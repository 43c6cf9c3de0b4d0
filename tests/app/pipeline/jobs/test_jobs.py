from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.core import secrets
from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.demo.sandbox import sandbox_state
from app.http.main import create_app
from app.pipeline.jobs import leases, service
from app.pipeline.jobs.models import Job, Lease
from app.pipeline.records import open_engine
from app.sources.models import Source
from connectors import registry
from connectors.sandbox.common import ServerThread
from tests.conftest import TEST_SECRET_KEY

DEMO = {"seed": 3, "teams": 1, "reps_per_team": 3, "months": 2}


def test_a_lease_has_one_holder_until_it_expires(session):
    ttl = timedelta(seconds=30)
    assert leases.acquire(session, "scheduler", "a", ttl)
    assert not leases.acquire(session, "scheduler", "b", ttl)
    assert leases.acquire(session, "scheduler", "a", ttl)  # renewal
    session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert leases.acquire(session, "scheduler", "b", ttl)  # a stopped renewing: b takes over
    assert session.get(Lease, "scheduler").holder == "b"
    leases.release(session, "scheduler", "a")  # not a's any more: nothing happens
    assert leases.held(session, "scheduler").holder == "b"
    leases.release(session, "scheduler", "b")
    assert leases.held(session, "scheduler") is None


def _source(session, settings, url: str) -> Source:
    source = Source(
        kind="salesforce",
        name="sf",
        base_url=url,
        credentials_encrypted=(secrets.encrypt(settings, {"access_token": "sandbox-token"})),
    )
    session.add(source)
    session.flush()
    return source


@pytest.fixture
def sandbox(settings):
    settings.source_allow_private_destinations = True  # the sandbox CRM listens on loopback
    with ServerThread(
        registry.sandbox_app("salesforce", sandbox_state(**DEMO), page_size=200)
    ) as server:
        yield server.url


def test_manual_sync_job_runs_the_chain(client, factory, session, settings, sandbox):
    source = _source(session, settings, sandbox)
    h = factory.key("admin")
    r = client.post(f"/api/v1/sources/{source.id}/sync", headers=h)
    assert r.status_code == 202, r.text
    job = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=h).json()
    assert (job["status"], job["stage"], job["kind"]) == ("succeeded", "done", "sync"), job
    assert job["progress"]["records"] == job["result"]["sync"]["fetched"] > 100
    assert job["progress"]["pages"] >= 3
    # Salesforce says how many records each query matches: the job counts to 100%.
    assert job["progress"]["percent"] == 100.0
    assert job["progress"]["totals"] == job["progress"]["streams"]
    assert job["result"]["compute"]["snapshot"] >= 1
    assert job["started_at"] and job["finished_at"] >= job["started_at"]
    # Who ran it, and when it last said it was alive (the orphan sweep reads it).
    assert job["worker"].count(":") == 1 and job["heartbeat_at"] >= job["started_at"]
    listed = client.get("/api/v1/jobs", params={"source_id": source.id}, headers=h).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert leases.held(session, service.sync_lease(source.id)) is None  # released


def test_a_source_never_syncs_twice_at_once(client, factory, session, settings, sandbox):
    source = _source(session, settings, sandbox)
    assert leases.acquire(
        session, service.sync_lease(source.id), "other-process", timedelta(minutes=1)
    )
    session.flush()
    h = factory.key("admin")
    job = client.get(
        f"/api/v1/jobs/{client.post(f'/api/v1/sources/{source.id}/sync', headers=h).json()['id']}",
        headers=h,
    ).json()
    assert job["status"] == "failed" and "already running" in job["error"]
    assert job["stage"] is None  # it never got the lease, so it never started syncing


def test_background_jobs_with_real_threads(tmp_path, sandbox):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = open_engine(url)
    upgrade(engine)
    # The sandbox CRM listens on loopback.
    settings = Settings(
        database_url=url, secret_key=TEST_SECRET_KEY, source_allow_private_destinations=True
    )
    factory = make_sessionmaker(engine)
    with transaction(factory) as s:
        source_id = _source(s, settings, sandbox).id
        from app.auth import service as auth_service

        _, token = auth_service.create(session=s, role="admin")
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, engine=engine)) as client:
        r = client.post(f"/api/v1/sources/{source_id}/sync", headers=h)
        assert r.status_code == 202 and r.json()["status"] in ("queued", "running")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=h).json()
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.1)
        assert job["status"] == "succeeded", job
    with factory() as s:
        assert s.get(Job, job["id"]).result["sync"]["inserted"] > 100
    engine.dispose()


def test_sync_percent_counts_finished_streams_and_the_current_one():
    details = {"stream_count": 3, "streams": {"owners": 10, "deals": 50}, "totals": {}}
    assert service.sync_percent(details) is None  # the current stream's size is unknown
    details["totals"] = {"owners": 10, "deals": 200}
    assert service.sync_percent(details) == round(100 * (1 + 50 / 200) / 3, 1)
    details["streams"]["deals"] = 250  # records changed while paging: never over 100
    assert service.sync_percent(details) == round(100 * 2 / 3, 1)
    assert service.sync_percent({"stream_count": 3, "streams": {}}) is None


def test_resync_endpoint_runs_a_full_resync_job(client, factory, session, settings, sandbox):
    source = _source(session, settings, sandbox)
    h = factory.key("admin")
    assert client.post(f"/api/v1/sources/{source.id}/sync", headers=h).status_code == 202
    r = client.post(f"/api/v1/sources/{source.id}/resync", headers=h)
    assert r.status_code == 202, r.text
    job = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=h).json()
    assert job["params"] == {"resync": True}
    assert job["status"] == "succeeded", job
    synced = job["result"]["sync"]
    assert synced["kind"] == "resync"
    assert synced["reconciled"] == {"deals": 0, "activities": 0}  # nothing gone from the CRM
    assert (synced["inserted"], synced["updated"]) == (0, 0)  # identical records not written
    assert (
        client.post(
            f"/api/v1/sources/{source.id}/resync", headers=factory.key("analyst")
        ).status_code
        == 403
    )


def test_a_csv_import_cannot_be_synced(client, factory, session):
    csv = Source(kind="csv", name="export.csv")
    session.add(csv)
    session.flush()
    h = factory.key("admin")
    for action in ("sync", "resync"):
        r = client.post(f"/api/v1/sources/{csv.id}/{action}", headers=h)
        assert r.status_code == 409, r.text
        assert "import the file again" in r.json()["error"]["message"]
    assert client.post("/api/v1/sources/99999/resync", headers=h).status_code == 404
