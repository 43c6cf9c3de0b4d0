"""Plant secrets everywhere a secret goes, run the service through success and failure, then
grep every log line, API answer and stored record for them."""

from __future__ import annotations

import json
import logging
import secrets as stdlib_secrets

import pytest
from sqlalchemy import text

from app.demo.sandbox import sandbox_state
from connectors import registry
from connectors.sandbox.common import ServerThread

DEMO = {"seed": 6, "teams": 1, "reps_per_team": 2, "months": 1}
PLANTED = {name: f"PLANTED-{name}-{stdlib_secrets.token_hex(8)}" for name in ("cs", "tok", "pd")}


@pytest.fixture
def sandboxes():
    servers = {
        kind: ServerThread(registry.sandbox_app(kind, sandbox_state(**DEMO), page_size=200))
        for kind in ("salesforce", "hubspot", "pipedrive")
    }
    for server in servers.values():
        server.__enter__()
    yield {kind: s.url for kind, s in servers.items()}
    for server in servers.values():
        server.__exit__(None, None, None)


def test_planted_secrets_never_leave(client, factory, session, settings, sandboxes, caplog):
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, the app: everything a deployment could log
    settings.webhook_allow_private_destinations = True
    settings.source_allow_private_destinations = True  # the sandbox CRMs listen on loopback
    admin = factory.key("admin")
    sources = {
        # Works: an expired access token is refreshed with the planted client secret.
        "ok": {
            "kind": "salesforce",
            "name": "sf",
            "base_url": sandboxes["salesforce"],
            "credentials": {
                "client_id": "qg",
                "client_secret": PLANTED["cs"],
                "refresh_token": "sandbox-refresh",
                "access_token": "expired",
                "login_url": sandboxes["salesforce"],
            },
        },
        # Fails: the CRM refuses the planted token.
        "refused": {
            "kind": "hubspot",
            "name": "hs",
            "base_url": sandboxes["hubspot"],
            "credentials": {"access_token": PLANTED["tok"]},
            "config": {"search_interval": 0},  # the sandbox has no search limit
        },
        # Fails: Pipedrive's token travels in a header, never in a logged URL.
        "pipedrive": {
            "kind": "pipedrive",
            "name": "pd",
            "base_url": sandboxes["pipedrive"],
            "credentials": {"api_token": PLANTED["pd"]},
        },
    }
    answers: list[str] = []
    ids = {}
    for label, body in sources.items():
        r = client.post("/api/v1/sources", json=body, headers=admin)
        assert r.status_code == 201, r.text
        answers.append(r.text)
        ids[label] = r.json()["id"]
    jobs = {}
    for label, source_id in ids.items():
        r = client.post(f"/api/v1/sources/{source_id}/sync", headers=admin)
        answers.append(r.text)
        jobs[label] = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=admin).json()
    assert jobs["ok"]["status"] == "succeeded", jobs["ok"]
    assert jobs["refused"]["status"] == "failed" and jobs["pipedrive"]["status"] == "failed"
    # A webhook's secret is shown once, then only ever stored encrypted.
    r = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/q", "event_types": ["*"]},
        headers=admin,
    )
    webhook_secret = r.json()["secret"]
    hook_id = r.json()["id"]
    # A bad request echoing a secret back: the error names the field, not the value.
    r = client.post(
        "/api/v1/sources",
        json={"kind": "nonsense", "name": "x", "credentials": {"access_token": PLANTED["tok"]}},
        headers=admin,
    )
    assert r.status_code == 422
    answers.append(r.text)
    for path in (
        "/api/v1/sources",
        *(f"/api/v1/sources/{i}" for i in ids.values()),
        *(f"/api/v1/sources/{i}/runs" for i in ids.values()),
        *(f"/api/v1/sources/{i}/quarantine" for i in ids.values()),
        "/api/v1/jobs",
        "/api/v1/audit",
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{hook_id}",
        f"/api/v1/webhooks/{hook_id}/deliveries",
        "/api/v1/api-keys",
        "/api/v1/sources?format=csv",
    ):
        r = client.get(path, headers=admin)
        assert r.status_code == 200, (path, r.text)
        answers.append(r.text)
    stored = [
        json.dumps([list(map(str, row)) for row in session.execute(text(f"SELECT * FROM {t}"))])
        for t in (
            "jobs",
            "sync_runs",
            "sources",
            "quarantined_records",
            "audit_log",
            "webhook_endpoints",
            "sync_cursors",
        )
    ]
    logged = "\n".join(r.getMessage() + str(r.args or "") for r in caplog.records)
    assert len(caplog.records) > 10  # the syncs did log: the grep below means something
    for name, planted in [*PLANTED.items(), ("webhook", webhook_secret)]:
        assert planted not in logged, f"{name} secret in the logs"
        for answer in answers[1:] if name == "webhook" else answers:
            assert planted not in answer, f"{name} secret in an API answer: {answer[:300]}"
        for rows in stored:
            assert planted not in rows, f"{name} secret stored in plain text"
