"""The audit log of changes, and the request limits (body size, rate per key)."""

from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.http.limits import RateLimiter


def _entries(session, entity_type: str) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == entity_type).order_by(AuditEntry.id)
        )
    )


def test_target_changes_are_logged_with_actor_and_values(client, factory, session):
    rep = factory.rep()
    h = factory.key("analyst", name="ops")
    body = {"rep_id": rep.id, "metric": "won_revenue", "period": "2026-11", "value": 50_000}
    r = client.post("/api/v1/targets", json=body, headers=h)
    assert r.status_code == 201
    target_id = r.json()["id"]
    assert client.patch(
        f"/api/v1/targets/{target_id}", json={"value": 60_000}, headers=h
    ).is_success
    # The same value again changes nothing, so it logs nothing.
    assert client.patch(
        f"/api/v1/targets/{target_id}", json={"value": 60_000}, headers=h
    ).is_success
    assert client.delete(f"/api/v1/targets/{target_id}", headers=h).status_code == 204
    created, updated, deleted = _entries(session, "target")
    assert (created.action, created.entity_id, created.before) == ("create", target_id, None)
    assert created.after["value"] == 50_000 and created.after["period"] == "2026-11"
    assert (updated.before, updated.after) == ({"value": 50_000}, {"value": 60_000})
    assert deleted.action == "delete" and deleted.before["value"] == 60_000
    assert created.actor.endswith("(analyst)") and created.actor_key_id is not None


def test_secrets_are_redacted_and_admins_read_the_log(client, factory, session, settings):
    admin = factory.key("admin")
    r = client.post(
        "/api/v1/sources",
        json={
            "kind": "hubspot",
            "name": "HubSpot",
            "credentials": {"access_token": "pat-na1-PLANTED-audit-secret"},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    source_id = r.json()["id"]
    r = client.patch(
        f"/api/v1/sources/{source_id}",
        json={"credentials": {"access_token": "pat-na1-OTHER-secret"}, "name": "HubSpot EU"},
        headers=admin,
    )
    assert r.status_code == 200
    log = client.get("/api/v1/audit", params={"entity_type": "source"}, headers=admin)
    assert log.status_code == 200
    items = log.json()["items"]
    assert [i["action"] for i in items] == ["create", "update"]
    assert items[0]["after"]["credentials_encrypted"] == "<set>"
    assert items[1]["before"]["name"] == "HubSpot" and items[1]["after"]["name"] == "HubSpot EU"
    assert items[1]["after"]["credentials_encrypted"] == "<changed>"
    assert "PLANTED" not in log.text and "OTHER-secret" not in log.text
    assert client.get("/api/v1/audit", headers=factory.key("analyst")).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401


def test_key_and_webhook_and_rule_changes_are_logged(client, factory, session):
    admin = factory.key("admin")
    r = client.post("/api/v1/api-keys", json={"role": "viewer", "name": "tv"}, headers=admin)
    key_id = r.json()["id"]
    client.delete(f"/api/v1/api-keys/{key_id}", headers=admin)
    r = client.post(
        "/api/v1/alert-rules", json={"name": "m", "event_type": "target.missed"}, headers=admin
    )
    assert r.status_code == 201
    r = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "event_types": ["*"]},
        headers=admin,
    )
    assert r.status_code == 201
    keys = _entries(session, "api_key")
    assert [(e.action, e.entity_id) for e in keys][-2:] == [("create", key_id), ("update", key_id)]
    assert "revoked_at" in keys[-1].after and "key_hash" not in keys[-1].after
    assert keys[-2].after["key_hash"] == "<set>"
    assert [e.action for e in _entries(session, "alert_rule")] == ["create"]
    (hook,) = _entries(session, "webhook")
    assert hook.after["secret_encrypted"] == "<set>" and hook.after["url"].startswith("https://")


def test_a_failed_change_leaves_no_entry(client, factory, session):
    admin = factory.key("admin")
    before = len(_entries(session, "target"))
    r = client.post(
        "/api/v1/targets",
        json={"rep_id": 10**9, "metric": "won_revenue", "period": "2026-11", "value": 1},
        headers=admin,
    )
    assert r.status_code in (404, 422)
    assert len(_entries(session, "target")) == before


def test_bodies_over_the_limit_are_refused_before_reading(client, factory):
    admin = factory.key("admin")
    huge = b"{" + b" " * (11 * 1024 * 1024) + b"}"
    r = client.post(
        "/api/v1/teams",
        content=huge,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_rate_limit_answers_429_with_retry_after(client, factory, settings):
    h = factory.key("viewer")
    settings.rate_limit_per_minute, settings.rate_limit_burst = 60, 3
    try:
        answers = [client.get("/api/v1/reps", headers=h) for _ in range(4)]
    finally:
        settings.rate_limit_per_minute, settings.rate_limit_burst = 1200, 300
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "1"
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    # Another key has its own bucket.
    assert client.get("/api/v1/reps", headers=factory.key("viewer")).status_code == 200


def test_token_bucket_refills():
    limiter = RateLimiter()
    assert [limiter.take(1, 60, 2, now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.take(1, 60, 2, now=0.5) == 0.5  # half a token back
    assert limiter.take(1, 60, 2, now=1.0) == 0.0
