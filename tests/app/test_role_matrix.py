"""Every endpoint by every role: exactly the intended answer.

The table below is the access policy, written out by hand (not derived from the code): each
(method, path) names the roles that may call it. Everyone else with a valid key gets 403; no
key, a revoked key and an expired key get 401. A route missing from the table fails the test,
so a new endpoint cannot ship without a decision. A manager reads only their own team tree:
direct reads of another team's rep, team, target or alert answer 404.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.alerts.models import Alert
from app.auth import service as auth_service
from app.core.base import utcnow
from app.pipeline.jobs.models import Job
from app.webhooks.models import WebhookDelivery

ALL = frozenset({"admin", "analyst", "manager", "viewer"})
READERS = frozenset({"admin", "analyst", "manager"})
WRITERS = frozenset({"admin", "analyst"})
ADMIN = frozenset({"admin"})

POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/reps"): ALL,
    ("GET", "/api/v1/reps/{rep_id}"): ALL,
    ("PATCH", "/api/v1/reps/{rep_id}"): ADMIN,
    ("GET", "/api/v1/teams"): ALL,
    ("POST", "/api/v1/teams"): ADMIN,
    ("GET", "/api/v1/teams/{team_id}"): ALL,
    ("PATCH", "/api/v1/teams/{team_id}"): ADMIN,
    ("POST", "/api/v1/targets"): WRITERS,
    ("GET", "/api/v1/targets"): ALL,
    ("POST", "/api/v1/targets/bulk"): WRITERS,
    ("POST", "/api/v1/targets/upload"): WRITERS,
    ("POST", "/api/v1/targets/suggest"): WRITERS,
    ("GET", "/api/v1/targets/{target_id}"): ALL,
    ("PATCH", "/api/v1/targets/{target_id}"): WRITERS,
    ("DELETE", "/api/v1/targets/{target_id}"): WRITERS,
    ("GET", "/api/v1/deals"): READERS,
    ("GET", "/api/v1/activities"): READERS,
    ("POST", "/api/v1/sources"): ADMIN,
    ("GET", "/api/v1/sources"): READERS,
    ("GET", "/api/v1/sources/{source_id}"): READERS,
    ("PATCH", "/api/v1/sources/{source_id}"): ADMIN,
    ("GET", "/api/v1/sources/{source_id}/quarantine"): WRITERS,  # raw rows: no team scope
    ("GET", "/api/v1/sources/{source_id}/runs"): READERS,
    ("POST", "/api/v1/sources/{source_id}/sync"): ADMIN,
    ("POST", "/api/v1/sources/{source_id}/resync"): ADMIN,
    ("POST", "/api/v1/sources/{source_id}/quarantine/replay"): ADMIN,
    ("GET", "/api/v1/jobs"): READERS,
    ("GET", "/api/v1/jobs/{job_id}"): READERS,
    ("POST", "/api/v1/imports"): ADMIN,
    ("GET", "/api/v1/performance"): ALL,
    ("GET", "/api/v1/reps/{rep_id}/performance"): ALL,
    ("GET", "/api/v1/reps/{rep_id}/coaching"): ALL,
    ("GET", "/api/v1/reps/{rep_id}/coaching/record"): ALL,
    ("GET", "/api/v1/reps/{rep_id}/trend"): ALL,
    ("GET", "/api/v1/wins"): ALL,
    ("GET", "/api/v1/hygiene"): READERS,
    ("GET", "/api/v1/teams/{team_id}/performance"): ALL,
    ("GET", "/api/v1/summary"): ALL,
    ("GET", "/api/v1/leaderboard"): ALL,
    ("POST", "/api/v1/compute"): WRITERS,
    ("GET", "/api/v1/snapshots"): WRITERS,
    ("POST", "/api/v1/alert-rules"): WRITERS,
    ("GET", "/api/v1/alert-rules"): READERS,
    ("GET", "/api/v1/alert-rules/{rule_id}"): READERS,
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): WRITERS,
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): WRITERS,
    ("GET", "/api/v1/alerts/event-types"): READERS,
    ("GET", "/api/v1/alerts"): READERS,
    ("GET", "/api/v1/alerts/{alert_id}"): READERS,
    ("POST", "/api/v1/webhooks"): WRITERS,
    ("GET", "/api/v1/webhooks"): WRITERS,
    ("GET", "/api/v1/webhooks/{webhook_id}"): WRITERS,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): WRITERS,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): WRITERS,
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): WRITERS,
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): WRITERS,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): WRITERS,
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): WRITERS,
    ("GET", "/api/v1/api-keys"): ADMIN,
    ("POST", "/api/v1/api-keys"): ADMIN,
    ("DELETE", "/api/v1/api-keys/{key_id}"): ADMIN,
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    ("GET", "/metrics"): frozenset({"admin", "analyst", "viewer"}),
}
PUBLIC = {("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready")}
ROLES = ("admin", "analyst", "manager", "viewer")


@pytest.fixture
def world(factory, session, settings):
    boss = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=boss.id)
    south = factory.team(name="South")
    ours = factory.rep(team_id=north.id, manager_id=boss.id)
    theirs = factory.rep(team_id=south.id)
    target = factory.target(rep_id=ours.id)
    their_target = factory.target(rep_id=theirs.id)
    source = factory.source()
    job = Job(kind="compute", status="succeeded")
    alert = Alert(
        event_id="alrt_ours",
        event_type="target.missed",
        subject_type="rep",
        subject_id=ours.id,
        rep_id=ours.id,
        team_id=north.id,
        summary="s",
    )
    their_alert = Alert(
        event_id="alrt_theirs",
        event_type="target.missed",
        subject_type="rep",
        subject_id=theirs.id,
        rep_id=theirs.id,
        team_id=south.id,
        summary="s",
    )
    session.add_all([job, alert, their_alert])
    rule = factory.alert_rule()
    hook, _ = factory.webhook(settings, "https://hooks.example.com/x")
    session.flush()
    delivery = WebhookDelivery(
        endpoint_id=hook.id, message_id="alrt_ours", event_type="target.missed", body="{}"
    )
    session.add(delivery)
    spare, _ = auth_service.create(session=session, role="viewer", name="spare")
    session.flush()
    keys = {role: factory.key(role) for role in ROLES if role != "manager"}
    keys["manager"] = factory.key("manager", rep_id=boss.id)
    revoked, token = auth_service.create(session=session, role="admin")
    revoked.revoked_at = utcnow()
    keys["revoked"] = {"Authorization": f"Bearer {token}"}
    _, token = auth_service.create(
        session=session, role="admin", expires_at=utcnow() - timedelta(minutes=1)
    )
    keys["expired"] = {"Authorization": f"Bearer {token}"}
    keys["none"] = {}
    session.flush()
    ids = {
        "rep_id": ours.id,
        "team_id": north.id,
        "target_id": target.id,
        "source_id": source.id,
        "job_id": job.id,
        "rule_id": rule.id,
        "alert_id": alert.id,
        "webhook_id": hook.id,
        "delivery_id": delivery.id,
        "key_id": spare.id,
    }
    others = {
        "/api/v1/reps/{rep_id}": theirs.id,
        "/api/v1/teams/{team_id}": south.id,
        "/api/v1/targets/{target_id}": their_target.id,
        "/api/v1/alerts/{alert_id}": their_alert.id,
        "/api/v1/reps/{rep_id}/performance": theirs.id,
        "/api/v1/reps/{rep_id}/coaching/record": theirs.id,
        "/api/v1/teams/{team_id}/performance": south.id,
    }
    return keys, ids, others


def _call(client, method: str, path: str, headers: dict[str, str]):
    body = {} if method in ("POST", "PATCH") and not path.endswith(("upload", "imports")) else None
    return client.request(method, path, headers=headers, json=body)


def test_every_route_is_in_the_policy(app):
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes - PUBLIC - set(POLICY) == set(), "routes without an access decision"


def test_role_matrix(client, app, world):
    keys, ids, _ = world
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    } - PUBLIC
    wrong = []
    for method, template in sorted(routes):
        path = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), template)
        allowed = POLICY[(method, template)]
        for who, headers in keys.items():
            status = _call(client, method, path, headers).status_code
            if who in ("none", "revoked", "expired"):
                ok = status == 401
            elif who in allowed:
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == 403
            if not ok:
                wrong.append(f"{method} {template} as {who}: {status}")
    assert wrong == []


def test_managers_get_404_for_other_teams(client, world):
    keys, _, others = world
    for template, other_id in others.items():
        path = re.sub(r"\{\w+\}", str(other_id), template)
        r = client.get(path, headers=keys["manager"])
        assert r.status_code == 404, (template, r.status_code)
        # ... and the same read of their own is allowed (the 404 is about scope, not the id)
        assert client.get(path, headers=keys["admin"]).status_code == 200, template
