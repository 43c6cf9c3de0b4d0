"""The webhook API: endpoints, their secrets, tests, deliveries and retries."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from app.alerts import events as alert_events
from app.core.base import utcnow
from app.webhooks import service as webhooks_service
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.app.webhooks.conftest import raise_alerts
from tests.app.webhooks.receiver import Answer

API = "/api/v1/webhooks"


def _create(client, headers, **body):
    return client.post(API, json={"event_types": ["*"], **body}, headers=headers)


def test_the_secret_is_shown_once_and_stored_encrypted(client, factory, session, settings):
    admin = factory.key("admin")
    r = _create(client, admin, url="https://hooks.example.com/qg", description="ops")
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["is_enabled"] is True and created["format"] == "standard"

    one = client.get(f"{API}/{created['id']}", headers=admin)
    listed = client.get(API, headers=admin)
    assert one.status_code == 200 and listed.status_code == 200
    assert "secret" not in one.json() and "secret_encrypted" not in one.json()
    assert [w["id"] for w in listed.json()["items"]] == [created["id"]]
    for answer in (one, listed):
        assert secret not in answer.text
        assert secret.removeprefix("whsec_") not in answer.text

    stored = session.execute(
        text("SELECT secret_encrypted FROM webhook_endpoints WHERE id = :id"),
        {"id": created["id"]},
    ).scalar_one()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/x", "event_types": ["target.exploded"]}, "event_types"),
        ({"url": "https://hooks.example.com/x", "event_types": []}, "event_types"),
        ({"url": "https://hooks.example.com/x", "event_types": ["*.exploded"]}, "event_types"),
        ({"url": "https://hooks.example.com/x", "event_types": ["target.*.x"]}, "event_types"),
        ({"url": "https://hooks.example.com/x", "format": "teams"}, "format"),
        ({"url": "https://hooks.example.com/x", "team_ids": [999999]}, "team_ids"),
    ],
)
def test_invalid_webhooks_are_422_naming_the_field(client, factory, body, field):
    r = _create(client, factory.key("admin"), **body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["error"]["details"]]


def test_updates_and_resolutions_are_subscribable_by_name_or_pattern(client, factory):
    admin = factory.key("admin")
    wanted = ["target.missed.resolved", "*.updated", "team.wide_gap.*"]
    r = _create(client, admin, url="https://hooks.example.com/x", event_types=wanted)
    assert r.status_code == 201, r.text
    assert r.json()["event_types"] == sorted(wanted)
    patched = client.patch(
        f"{API}/{r.json()['id']}", json={"event_types": ["*.resolved"]}, headers=admin
    )
    assert patched.status_code == 200 and patched.json()["event_types"] == ["*.resolved"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://localhost:8080/hook",
    ],
)
def test_private_destinations_are_refused_unless_allowed(client, factory, settings, url):
    admin = factory.key("admin")
    assert settings.webhook_allow_private_destinations is False
    refused = _create(client, admin, url=url)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "url"
    assert "QG_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS" in refused.json()["error"]["message"]

    ok = _create(client, admin, url="https://hooks.example.com/x")
    moved = client.patch(f"{API}/{ok.json()['id']}", json={"url": url}, headers=admin)
    assert moved.status_code == 422  # nor can an endpoint be moved there

    settings.webhook_allow_private_destinations = True
    assert _create(client, admin, url=url).status_code == 201


def test_a_private_destination_is_refused_at_send_time_too(
    session, session_factory, settings, factory, receiver, clock
):
    """An endpoint stored while private destinations were allowed is not sent to after."""
    _, secret = factory.webhook(settings, receiver.url("/a"))
    receiver.add("/a", secret)
    settings.webhook_senders = 1
    raise_alerts(session, settings)
    Dispatcher(session_factory, settings, clock=clock).run_once()
    assert receiver.received == []
    delivery = session.scalars(select(WebhookDelivery)).one()
    session.refresh(delivery)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "destination refused" in delivery.last_error
    assert "loopback" in delivery.last_error


def test_patch_reenables_and_clears_why_it_was_disabled(client, factory, session):
    admin = factory.key("admin")
    created = _create(client, admin, url="https://hooks.example.com/x").json()
    endpoint = session.get(WebhookEndpoint, created["id"])
    endpoint.is_enabled = False
    endpoint.disabled_reason = "the endpoint answered 410 Gone"
    session.flush()

    shown = client.get(f"{API}/{created['id']}", headers=admin).json()
    assert shown["is_enabled"] is False
    assert shown["disabled_reason"] == "the endpoint answered 410 Gone"

    r = client.patch(
        f"{API}/{created['id']}",
        json={"is_enabled": True, "event_types": ["target.missed"], "format": "slack"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["is_enabled"] is True
    assert body["disabled_reason"] is None and body["disabled_at"] is None
    assert body["event_types"] == ["target.missed"] and body["format"] == "slack"
    assert "secret" not in body

    bad = client.patch(f"{API}/{created['id']}", json={"event_types": ["nope"]}, headers=admin)
    assert bad.status_code == 422
    assert "event_types" in [d["field"] for d in bad.json()["error"]["details"]]


def test_test_event_is_delivered_signed_and_rotation_changes_the_key(
    client, factory, session, session_factory, loopback_settings, receiver, clock
):
    admin = factory.key("admin")
    created = _create(client, admin, url=receiver.url("/a")).json()
    receiver.add("/a", created["secret"])

    r = client.post(f"{API}/{created['id']}/test", headers=admin)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["event_type"] == "webhook.test" and queued["status"] == "pending"

    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.drain() == 1
    [got] = receiver.received
    assert got.verified, got.error
    assert got.webhook_id == queued["message_id"]
    assert got.json["type"] == "webhook.test"
    assert got.headers["content-type"] == "application/json"

    rotated = client.post(f"{API}/{created['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    assert new_secret not in client.get(f"{API}/{created['id']}", headers=admin).text

    # Still verifying with the old secret: the new signature does not pass...
    client.post(f"{API}/{created['id']}/test", headers=admin)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.drain()
    assert receiver.received[-1].verified is False
    # ...and with the new one it does.
    receiver.add("/a", new_secret)
    client.post(f"{API}/{created['id']}/test", headers=admin)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.drain()
    assert receiver.received[-1].verified, receiver.received[-1].error


def test_deliveries_list_the_attempt_log_and_retry_sends_again(
    client, factory, session, session_factory, loopback_settings, receiver, clock
):
    admin = factory.key("admin")
    endpoint, secret = factory.webhook(loopback_settings, receiver.url("/a"))
    receiver.add("/a", secret)
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script("/a", Answer(500, body="boom"))

    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()  # 500: retried in about 5 s
        clock.advance(10)
        dispatcher.run_once()  # 200

    r = client.get(f"{API}/{endpoint.id}/deliveries", headers=admin)
    assert r.status_code == 200, r.text
    [delivery] = r.json()["items"]
    assert delivery["message_id"] == alert.event_id and delivery["alert_id"] == alert.id
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2
    first, second = delivery["attempt_log"]
    assert first["status_code"] == 500 and first["error"] == "HTTP 500"
    assert first["response_body"] == "boom" and first["next_attempt_at"] is not None
    assert second["status_code"] == 200 and second["error"] is None
    assert second["next_attempt_at"] is None

    assert (
        client.get(
            f"{API}/{endpoint.id}/deliveries", params={"status": "failed"}, headers=admin
        ).json()["items"]
        == []
    )

    r = client.post(f"{API}/{endpoint.id}/deliveries/{delivery['id']}/retry", headers=admin)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.drain() == 1
    ids = [x.webhook_id for x in receiver.received]
    assert ids == [alert.event_id] * 3  # a retry carries the same webhook-id
    assert all(x.verified for x in receiver.received)

    other, _ = factory.webhook(loopback_settings, "https://hooks.example.com/other")
    wrong = client.post(f"{API}/{other.id}/deliveries/{delivery['id']}/retry", headers=admin)
    assert wrong.status_code == 404
    assert client.get(f"{API}/999999/deliveries", headers=admin).status_code == 404


def test_retrying_a_failed_delivery_gives_it_one_more_attempt(
    client, factory, session, session_factory, loopback_settings, receiver, clock
):
    admin = factory.key("admin")
    loopback_settings.webhook_retry_schedule_seconds = [0.0, 1.0]
    endpoint, secret = factory.webhook(loopback_settings, receiver.url("/a"))
    receiver.add("/a", secret)
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script("/a", 500, 500, 500, 500)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
        clock.advance(2)
        dispatcher.run_once()
        delivery = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        ).one()
        session.refresh(delivery)
        assert delivery.status == "failed" and delivery.attempts == 2

        # Retried and failing again: failed once more, not an error and not a loop.
        client.post(f"{API}/{endpoint.id}/deliveries/{delivery.id}/retry", headers=admin)
        assert dispatcher.run_once() == 1
        session.refresh(delivery)
        assert delivery.status == "failed" and delivery.attempts == 3
        clock.advance(3600)
        assert dispatcher.run_once() == 0

        # Retried and answered: succeeded.
        client.post(f"{API}/{endpoint.id}/deliveries/{delivery.id}/retry", headers=admin)
        receiver.scripts["/a"].clear()
        assert dispatcher.run_once() == 1
        session.refresh(delivery)
        assert delivery.status == "succeeded"
    assert {r.webhook_id for r in receiver.received} == {alert.event_id}
    assert len(receiver.received) == 4


def test_delete_removes_the_endpoint_and_its_deliveries(client, factory, session, settings):
    admin = factory.key("admin")
    endpoint, _ = factory.webhook(settings, "https://hooks.example.com/x")
    raise_alerts(session, settings, 2)
    r = client.delete(f"{API}/{endpoint.id}", headers=admin)
    assert r.status_code == 204
    assert client.get(f"{API}/{endpoint.id}", headers=admin).status_code == 404
    session.expire_all()
    assert session.scalars(select(WebhookDelivery)).all() == []


@pytest.mark.parametrize("role", ["viewer", "manager"])
def test_readers_may_not_manage_webhooks(client, factory, settings, role):
    endpoint, _ = factory.webhook(settings, "https://hooks.example.com/x")
    headers = factory.key(role, rep_id=factory.rep().id if role == "manager" else None)
    calls = [
        ("GET", API),
        ("POST", API),
        ("GET", f"{API}/{endpoint.id}"),
        ("PATCH", f"{API}/{endpoint.id}"),
        ("DELETE", f"{API}/{endpoint.id}"),
        ("POST", f"{API}/{endpoint.id}/test"),
        ("POST", f"{API}/{endpoint.id}/rotate-secret"),
        ("GET", f"{API}/{endpoint.id}/deliveries"),
        ("POST", f"{API}/{endpoint.id}/deliveries/1/retry"),
    ]
    body = {"url": "https://hooks.example.com/y", "event_types": ["*"]}
    for method, url in calls:
        r = client.request(method, url, headers=headers, json=body)
        assert r.status_code == 403, (method, url, r.status_code)
        assert client.request(method, url, json=body).status_code == 401, (method, url)


def test_analysts_manage_webhooks(client, factory):
    r = _create(client, factory.key("analyst"), url="https://hooks.example.com/x")
    assert r.status_code == 201


def test_slack_marks_updates_and_resolutions(session, settings):
    [alert] = raise_alerts(session, settings)
    previous = {"status": alert.status, **alert.data}
    alert.current_summary = "Rep 1 no longer misses the 2026-02 won_revenue target."
    alert.state, alert.resolved_at, alert.revision = "resolved", utcnow(), 1
    alert.resolved_reason = "condition_cleared"
    resolved = alert_events.change_event(alert, "resolved", previous=previous, changed=[])
    text = json.loads(webhooks_service.render("slack", resolved.payload))["text"]
    assert text == (
        ":white_check_mark: *target.missed.resolved*: "
        "Rep 1 no longer misses the 2026-02 won_revenue target."
    )
    alert.state, alert.updated_at, alert.revision = "open", utcnow(), 2
    updated = alert_events.change_event(alert, "updated", previous=previous, changed=[])
    text = json.loads(webhooks_service.render("slack", updated.payload))["text"]
    assert text.startswith(":arrows_counterclockwise: *target.missed.updated*: ")
    assert updated.message_id == f"{alert.event_id}_updated_2"
