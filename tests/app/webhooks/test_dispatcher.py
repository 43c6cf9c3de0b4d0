"""The dispatcher against a real receiver on loopback, with the clock in the test's hands."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import func, select

from app.alerts import events as alert_events
from app.alerts.models import Alert
from app.core import secrets
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.pipeline.records import open_engine
from app.webhooks import service as webhooks_service
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import WebhookUpdate
from tests.app.webhooks.conftest import Clock, raise_alerts
from tests.app.webhooks.receiver import Answer, Receiver
from tests.conftest import TEST_SECRET_KEY

DEFAULT_SCHEDULE = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


def _delivery(session, alert: Alert, endpoint: WebhookEndpoint) -> WebhookDelivery:
    session.expire_all()
    return session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.alert_id == alert.id, WebhookDelivery.endpoint_id == endpoint.id
        )
    ).one()


def _attempts(session, delivery: WebhookDelivery) -> list[DeliveryAttempt]:
    return list(
        session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery.id)
            .order_by(DeliveryAttempt.id)
        )
    )


@pytest.fixture
def hook(factory, loopback_settings, receiver):
    """An endpoint on the receiver's /a, subscribed to every alert type."""
    endpoint, secret = factory.webhook(loopback_settings, receiver.url("/a"))
    receiver.add("/a", secret)
    return endpoint


def test_a_delivery_is_signed_per_standard_webhooks_with_the_alert_event_id(
    session, session_factory, loopback_settings, receiver, hook, clock
):
    alerts = raise_alerts(session, loopback_settings, 3)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.run_once() == 3
        assert dispatcher.run_once() == 0  # nothing sent twice

    assert len(receiver.received) == 3
    assert all(r.verified for r in receiver.received), [r.error for r in receiver.received]
    by_id = {r.webhook_id: r for r in receiver.received}
    assert set(by_id) == {a.event_id for a in alerts}
    secret = receiver.secrets["/a"]
    for alert in alerts:
        got = by_id[alert.event_id]
        payload = got.json
        assert payload["type"] == "target.missed"
        assert payload["data"]["event_id"] == alert.event_id
        assert payload["data"]["alert_id"] == alert.id
        assert payload["data"]["summary"] == alert.summary
        assert payload["data"]["actual"] == 100.0
        # The signature by hand, as the specification states it.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{got.webhook_id}.{got.headers['webhook-timestamp']}.{got.body}".encode()
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert got.headers["webhook-signature"] == f"v1,{expected}"
        assert got.headers["user-agent"].startswith("QuotaGap-Webhooks/")
        delivery = _delivery(session, alert, hook)
        assert delivery.status == "succeeded" and delivery.attempts == 1
        assert delivery.delivered_at == clock.now and delivery.last_status_code == 200
    session.refresh(hook)
    assert hook.last_success_at == clock.now and hook.failing_since is None


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_a_failure_is_retried_on_the_schedule_with_jitter_under_the_same_id(
    session, session_factory, loopback_settings, receiver, hook, clock, jitter
):
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script("/a", 500)
    dispatcher = Dispatcher(session_factory, loopback_settings, clock=clock, jitter=lambda: jitter)
    assert dispatcher.run_once() == 1
    first_at = clock.now
    delivery = _delivery(session, alert, hook)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
    # 5 s, with ±10% jitter: 4.5 s at the bottom of the jitter, 5.5 s at the top
    assert delivery.next_attempt_at == first_at + timedelta(seconds=4.5 + jitter)
    session.refresh(hook)
    assert hook.failing_since == first_at

    clock.advance(4)
    assert dispatcher.run_once() == 0  # not due yet
    clock.advance(2)
    assert dispatcher.run_once() == 1
    dispatcher.close()

    delivery = _delivery(session, alert, hook)
    assert delivery.status == "succeeded" and delivery.attempts == 2
    attempts = _attempts(session, delivery)
    assert [a.status_code for a in attempts] == [500, 200]
    assert attempts[0].next_attempt_at == first_at + timedelta(seconds=4.5 + jitter)
    assert attempts[1].next_attempt_at is None
    assert [r.webhook_id for r in receiver.received] == [alert.event_id] * 2
    assert all(r.verified for r in receiver.received)
    assert receiver.received[0].body == receiver.received[1].body  # the same message
    session.refresh(hook)
    assert hook.failing_since is None


@pytest.mark.parametrize(
    ("status", "retry_after", "low", "high"),
    [
        (429, "120", 120, 120),
        (502, "120", 120, 120),
        (504, "120", 120, 120),
        (429, "999999", 36000, 36000),  # capped at the schedule's longest wait
        (503, "120", 4.5, 5.5),  # not one of the statuses whose Retry-After is honoured
        (429, "soon", 4.5, 5.5),  # unreadable: the schedule
    ],
)
def test_retry_after_is_honoured_on_429_502_504(
    session,
    session_factory,
    loopback_settings,
    receiver,
    hook,
    clock,
    status,
    retry_after,
    low,
    high,
):
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script("/a", Answer(status, headers={"Retry-After": retry_after}))
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    delivery = _delivery(session, alert, hook)
    wait = (delivery.next_attempt_at - clock.now).total_seconds()
    assert low <= wait <= high
    assert delivery.status == "pending" and delivery.last_status_code == status


def test_retry_after_as_an_http_date(
    session, session_factory, loopback_settings, receiver, hook, clock
):
    [alert] = raise_alerts(session, loopback_settings)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    receiver.script("/a", Answer(429, headers={"Retry-After": when}))
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    wait = (_delivery(session, alert, hook).next_attempt_at - clock.now).total_seconds()
    assert 590 <= wait <= 600


def test_a_redirect_is_a_failure_and_is_not_followed(
    session, session_factory, loopback_settings, receiver, hook, clock
):
    [alert] = raise_alerts(session, loopback_settings)
    receiver.add("/elsewhere", receiver.secrets["/a"])
    receiver.script("/a", Answer(301, headers={"Location": receiver.url("/elsewhere")}))
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    assert [r.path for r in receiver.received] == ["/a"]
    delivery = _delivery(session, alert, hook)
    assert delivery.status == "pending" and delivery.last_status_code == 301
    assert "redirect" in delivery.last_error


def test_no_answer_within_the_timeout_is_a_failure(
    session, session_factory, loopback_settings, receiver, hook, clock
):
    loopback_settings.webhook_timeout_seconds = 0.5
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script(
        "/a",
        Answer(200, sleep=1.5),  # no answer in time
        Answer(200, body="x" * 8, trickle=0.2),  # each byte in time, the whole answer not
    )
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
        delivery = _delivery(session, alert, hook)
        assert delivery.status == "pending" and delivery.last_status_code is None
        assert delivery.last_error == "timeout after 0.5 s"

        clock.advance(6)
        dispatcher.run_once()
        delivery = _delivery(session, alert, hook)
        assert delivery.status == "pending" and delivery.attempts == 2
        assert delivery.last_error.startswith("timeout after 0.5 s")

        clock.advance(400)
        dispatcher.run_once()
    delivery = _delivery(session, alert, hook)
    assert delivery.status == "succeeded" and delivery.attempts == 3
    assert [r.webhook_id for r in receiver.received] == [alert.event_id] * 3


def test_a_receiver_that_is_down_is_retried_until_it_is_up(
    factory, session, session_factory, loopback_settings, clock
):
    down = Receiver()  # not listening yet
    endpoint, secret = factory.webhook(loopback_settings, down.url("/a"))
    down.add("/a", secret)
    [alert] = raise_alerts(session, loopback_settings)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
        delivery = _delivery(session, alert, endpoint)
        assert delivery.status == "pending" and delivery.last_status_code is None
        assert "ConnectError" in delivery.last_error
        with down:
            clock.advance(6)
            dispatcher.run_once()
    assert _delivery(session, alert, endpoint).status == "succeeded"
    assert [(r.webhook_id, r.verified) for r in down.received] == [(alert.event_id, True)]


def test_410_gone_disables_the_endpoint_at_once(
    factory, session, session_factory, loopback_settings, receiver, hook, clock
):
    _other, other_secret = factory.webhook(loopback_settings, receiver.url("/b"))
    receiver.add("/b", other_secret)
    first, second = raise_alerts(session, loopback_settings, 2)
    receiver.script("/a", 410)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.run_once() == 4  # all four claimed in one round...
    # ...but after the 410 nothing more went to /a, not even in that round
    assert len(receiver.on("/a")) == 1
    assert {r.webhook_id for r in receiver.on("/b")} == {first.event_id, second.event_id}
    session.refresh(hook)
    assert hook.is_enabled is False and hook.disabled_at == clock.now
    assert "410 Gone" in hook.disabled_reason

    # New alerts are not queued for it, and what was queued waits.
    [third] = raise_alerts(session, loopback_settings)
    assert (
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == hook.id, WebhookDelivery.alert_id == third.id)
        )
        == 0
    )
    clock.advance(3600)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    assert len(receiver.on("/a")) == 1
    pending = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == hook.id, WebhookDelivery.status == "pending"
        )
    ).all()
    assert len(pending) == 2

    # Enabled again by its owner: the waiting deliveries go out.
    webhooks_service.update(
        session=session,
        settings=loopback_settings,
        endpoint=hook,
        webhook_in=WebhookUpdate(is_enabled=True),
    )
    assert hook.disabled_reason is None
    clock.advance(3600)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.drain()
    ids = [r.webhook_id for r in receiver.on("/a") if r.status == 200]
    assert sorted(ids) == sorted([first.event_id, second.event_id])


def test_an_endpoint_failing_for_five_days_is_disabled(
    factory, session, session_factory, loopback_settings, receiver, hook, clock
):
    day = 86400.0
    loopback_settings.webhook_retry_schedule_seconds = [0.0, 3 * day, 3 * day]
    receiver.script("/a", *[500] * 10)
    [alert] = raise_alerts(session, loopback_settings)
    started = clock.now
    with Dispatcher(
        session_factory, loopback_settings, clock=clock, jitter=lambda: 0.5
    ) as dispatcher:
        dispatcher.run_once()
        clock.advance(3.2 * day)
        dispatcher.run_once()
        session.refresh(hook)
        assert hook.is_enabled is True  # failing for 3 days: not yet
        clock.advance(3.2 * day)
        dispatcher.run_once()
    session.refresh(hook)
    assert hook.is_enabled is False
    assert hook.failing_since == started
    assert "failing since" in hook.disabled_reason and "HTTP 500" in hook.disabled_reason
    assert len(receiver.on("/a")) == 3
    assert _delivery(session, alert, hook).status == "failed"  # and its schedule ran out


def test_a_success_in_between_resets_the_failing_clock(
    factory, session, session_factory, loopback_settings, receiver, hook, clock
):
    day = 86400.0
    loopback_settings.webhook_retry_schedule_seconds = [0.0, 3 * day, 3 * day]
    receiver.script("/a", 500)
    raise_alerts(session, loopback_settings)
    with Dispatcher(
        session_factory, loopback_settings, clock=clock, jitter=lambda: 0.5
    ) as dispatcher:
        dispatcher.run_once()  # fails
        clock.advance(3.2 * day)
        dispatcher.run_once()  # succeeds
        receiver.script("/a", 500)
        raise_alerts(session, loopback_settings)
        dispatcher.run_once()  # fails: failing since now
        clock.advance(3.2 * day)
        receiver.script("/a", 500)
        dispatcher.run_once()  # fails again, 3 days on, 6 after the first failure
    session.refresh(hook)
    assert hook.is_enabled is True
    assert hook.failing_since == clock.now - timedelta(days=3.2)


def test_exhausting_the_schedule_fails_the_delivery_and_tells_the_subscribers(
    factory, session, session_factory, loopback_settings, receiver, clock
):
    failing, secret_a = factory.webhook(
        loopback_settings,
        receiver.url("/a"),
        event_types=["target.missed", "alert.delivery_exhausted"],
    )
    _watcher, secret_b = factory.webhook(
        loopback_settings, receiver.url("/b"), event_types=["alert.delivery_exhausted"]
    )
    _everything, secret_c = factory.webhook(loopback_settings, receiver.url("/c"))  # '*'
    for path, secret in (("/a", secret_a), ("/b", secret_b), ("/c", secret_c)):
        receiver.add(path, secret)
    [alert] = raise_alerts(session, loopback_settings)
    receiver.script("/a", *[Answer(503, body="down for maintenance")] * 20)

    assert loopback_settings.webhook_retry_schedule_seconds == DEFAULT_SCHEDULE
    dispatcher = Dispatcher(session_factory, loopback_settings, clock=clock)  # random jitter
    waits = []
    for _ in range(20):
        dispatcher.run_once()
        delivery = _delivery(session, alert, failing)
        if delivery.status != "pending":
            break
        waits.append((delivery.next_attempt_at - clock.now).total_seconds())
        clock.now = delivery.next_attempt_at
    dispatcher.drain()  # the notice
    dispatcher.close()

    assert delivery.status == "failed" and delivery.attempts == 8
    assert delivery.next_attempt_at is None
    assert len(waits) == 7
    for wait, base in zip(waits, DEFAULT_SCHEDULE[1:], strict=True):
        assert 0.9 * base <= wait <= 1.1 * base, (wait, base)
    attempts = _attempts(session, delivery)
    assert len(attempts) == 8 and attempts[-1].next_attempt_at is None
    assert attempts[-1].response_body == "down for maintenance"
    assert [r.webhook_id for r in receiver.on("/a")] == [alert.event_id] * 8

    [notice] = session.scalars(
        select(Alert).where(Alert.event_type == "alert.delivery_exhausted")
    ).all()
    assert notice.data["message_id"] == alert.event_id
    assert notice.data["webhook_id"] == failing.id
    assert "HTTP 503" in notice.summary
    [told] = receiver.on("/b")
    assert told.verified and told.webhook_id == notice.event_id
    assert told.json["type"] == "alert.delivery_exhausted"
    assert told.json["data"]["message_id"] == alert.event_id
    # '*' is the alert types, not the service's own events; the failing endpoint is not told
    assert [r.webhook_id for r in receiver.on("/c")] == [alert.event_id]
    assert notice.event_id not in {r.webhook_id for r in receiver.on("/a")}
    session.refresh(failing)
    assert failing.is_enabled is True  # 27.6 h of failures: not five days


def test_slack_format_is_readable_text(
    factory, session, session_factory, loopback_settings, receiver, clock
):
    _endpoint, secret = factory.webhook(loopback_settings, receiver.url("/slack"), format="slack")
    receiver.add("/slack", secret)
    [alert] = raise_alerts(session, loopback_settings)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    [got] = receiver.received
    assert got.verified and got.webhook_id == alert.event_id
    assert got.json == {"text": f":red_circle: *target.missed*: {alert.summary}"}


def test_a_team_filter_covers_the_team_and_its_sub_teams(
    factory, session, session_factory, loopback_settings, receiver, clock
):
    parent = factory.team()
    child = factory.team(parent_id=parent.id)
    other = factory.team()
    _scoped, s1 = factory.webhook(
        loopback_settings,
        receiver.url("/scoped"),
        team_ids=[parent.id],
        event_types=["target.missed", "alert.delivery_exhausted"],
    )
    _unscoped, s2 = factory.webhook(loopback_settings, receiver.url("/all"))
    receiver.add("/scoped", s1)
    receiver.add("/all", s2)
    alerts = {
        name: raise_alerts(session, loopback_settings, team_id=team_id)[0]
        for name, team_id in [
            ("parent", parent.id),
            ("child", child.id),
            ("other", other.id),
            ("none", None),
        ]
    }
    [system] = raise_alerts(session, loopback_settings, event_type="alert.delivery_exhausted")
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.drain()
    scoped_ids = {r.webhook_id for r in receiver.on("/scoped")}
    assert scoped_ids == {alerts["parent"].event_id, alerts["child"].event_id, system.event_id}
    assert {r.webhook_id for r in receiver.on("/all")} == {a.event_id for a in alerts.values()}
    assert all(r.verified for r in receiver.received)


def test_a_crash_between_sending_and_recording_resends_the_same_id(
    session, session_factory, loopback_settings, receiver, hook, clock
):
    [alert] = raise_alerts(session, loopback_settings)
    crashing = Dispatcher(session_factory, loopback_settings, clock=clock)

    def crash(*_):
        raise RuntimeError("killed after sending")

    crashing._record = crash  # type: ignore[method-assign]
    assert crashing.run_once() == 1
    crashing.close()
    delivery = _delivery(session, alert, hook)
    assert delivery.status == "pending" and delivery.locked_until > clock.now

    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.run_once() == 0  # still claimed by the dead sender
        clock.advance(loopback_settings.webhook_timeout_seconds + 31)
        assert dispatcher.run_once() == 1
    assert _delivery(session, alert, hook).status == "succeeded"
    assert [(r.webhook_id, r.verified) for r in receiver.received] == [(alert.event_id, True)] * 2


def test_two_dispatchers_racing_never_send_a_delivery_twice(fresh_url, receiver):
    engine = open_engine(fresh_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    settings = Settings(
        database_url=fresh_url,
        secret_key=TEST_SECRET_KEY,
        webhook_allow_private_destinations=True,
        webhook_senders=4,
    )
    with transaction(factory) as s:
        endpoint = WebhookEndpoint(
            url=receiver.url("/a"),
            event_types=["*"],
            secret_encrypted="",
        )
        secret = webhooks_service.new_secret()
        endpoint.secret_encrypted = secrets.encrypt(settings, {"secret": secret})
        s.add(endpoint)
        s.flush()
        alerts = raise_alerts(s, settings, 60)
    receiver.add("/a", secret)
    receiver.script("/a", *[Answer(200, sleep=0.01)] * 60)

    clock = Clock(datetime.now(UTC) + timedelta(seconds=1))
    dispatchers = [Dispatcher(factory, settings, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2)
    sent = [0, 0]

    def run(i: int) -> None:
        barrier.wait()
        while n := dispatchers[i].run_once(limit=5):
            sent[i] += n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for d in dispatchers:
        d.close()

    ids = [r.webhook_id for r in receiver.received]
    assert sorted(ids) == sorted(a.event_id for a in alerts)  # each exactly once
    assert sum(sent) == 60
    with factory() as s:
        statuses = set(s.scalars(select(WebhookDelivery.status)))
        attempts = s.scalar(select(func.count()).select_from(DeliveryAttempt))
    assert statuses == {"succeeded"} and attempts == 60
    engine.dispose()


def test_secrets_and_signatures_are_never_logged(
    caplog, client, factory, session, session_factory, loopback_settings, receiver, clock
):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    admin = factory.key("admin")
    created = client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url("/a"), "event_types": ["*"]},
        headers=admin,
    ).json()
    receiver.add("/a", created["secret"])
    rotated = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=admin)
    receiver.add("/a", rotated.json()["secret"])
    raise_alerts(session, loopback_settings, 2)
    receiver.script("/a", 500, Answer(429, headers={"Retry-After": "1"}))
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
        clock.advance(10)
        dispatcher.run_once()
    assert len(receiver.received) == 4 and all(r.verified for r in receiver.received)
    assert "webhook delivery" in caplog.text  # the failures were logged...
    for secret in (created["secret"], rotated.json()["secret"]):
        assert secret.removeprefix("whsec_") not in caplog.text  # ...without any secret
    for r in receiver.received:
        assert r.headers["webhook-signature"].split(",", 1)[1] not in caplog.text
    deliveries = client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=admin)
    assert rotated.json()["secret"].removeprefix("whsec_") not in deliveries.text


def test_a_change_to_an_alert_goes_out_signed_under_its_own_id(
    session, session_factory, factory, loopback_settings, receiver, clock
):
    """Subscriptions by name and by pattern; the change's id is not the alert's."""
    endpoints = {}
    for path, types in (
        ("/resolved", ["*.resolved"]),
        ("/missed", ["target.missed.*"]),
        ("/raised", ["target.missed"]),
        ("/gap", ["team.wide_gap.resolved"]),
    ):
        endpoint, secret = factory.webhook(loopback_settings, receiver.url(path), event_types=types)
        receiver.add(path, secret)
        endpoints[path] = endpoint
    [alert] = raise_alerts(session, loopback_settings)
    previous = {"status": alert.status, **alert.data}
    alert.state, alert.resolved_at = "resolved", clock.now
    alert.resolved_reason, alert.revision = "condition_cleared", 1
    alert.current = {**previous, "actual": 1200.0, "status": "achieved"}
    event = alert_events.change_event(alert, "resolved", previous=previous, changed=["actual"])
    queued = webhooks_service.enqueue(session=session, settings=loopback_settings, events=[event])
    assert queued == 2
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        assert dispatcher.run_once() == 3  # the raised alert to /raised, its resolution to two

    by_path = {r.path: r for r in receiver.received}
    assert set(by_path) == {"/resolved", "/missed", "/raised"}
    assert all(r.verified for r in receiver.received), [r.error for r in receiver.received]
    for path in ("/resolved", "/missed"):
        got = by_path[path]
        assert got.webhook_id == f"{alert.event_id}_resolved_1"
        assert got.json["type"] == "target.missed.resolved"
        data = got.json["data"]
        assert (data["alert_id"], data["state"]) == (alert.id, "resolved")
        assert data["previous"]["actual"] == 100.0 and data["current"]["actual"] == 1200.0
    assert by_path["/raised"].webhook_id == alert.event_id
