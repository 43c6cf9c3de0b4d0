"""Webhook endpoints, their deliveries (the outbox), and where a webhook may point."""

from __future__ import annotations

import base64
import json
import secrets as stdlib_secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.alerts.events import Event, iso, raised
from app.alerts.models import RULE_EVENTS, Alert
from app.core import netguard, secrets
from app.core.base import utcnow
from app.core.config import Settings
from app.core.exceptions import NotFoundError
from app.teams import service as teams_service
from app.teams import tree
from app.webhooks import resolve, subscriptions
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import AttemptRead, DeliveryRead, WebhookCreate, WebhookUpdate

SLACK_ICONS = {
    "target.missed": ":red_circle:",
    "target.at_risk": ":warning:",
    "rep.persistent_underperformance": ":rotating_light:",
    "team.wide_gap": ":busts_in_silhouette:",
    "deal.big_win": ":trophy:",
    "crm.hygiene": ":broom:",
    "rep.coaching_stalled": ":hourglass:",
    "alert.delivery_exhausted": ":x:",
    "webhook.test": ":wave:",
}
# An alert's .updated and .resolved events, whatever its type.
CHANGE_ICONS = {"updated": ":arrows_counterclockwise:", "resolved": ":white_check_mark:"}


# -- destinations


def pinned_transport(settings: Settings) -> resolve.PinnedTransport:
    """The senders' transport: connections go to an address checked from one lookup."""
    allow = settings.webhook_allow_private_destinations
    return resolve.PinnedTransport(None if allow else netguard.refused_reason)


def check_destination(url: str, *, settings: Settings, resolve: bool = True) -> None:
    """Refuse URLs that point into the service's own network (SSRF), unless allowed.

    At creation an unresolvable host is accepted (DNS may not know it yet); at send time
    (``resolve=True``) a lookup failure fails the attempt, and the connection goes to an
    address checked again from one lookup (:class:`app.webhooks.resolve.PinnedTransport`).
    Every address the name resolves to must be public, so a name with one public and one
    private address is refused.
    """
    netguard.check_url(
        url,
        allow_private=settings.webhook_allow_private_destinations,
        resolve=resolve,
        field="url",
        what="webhook URL",
        setting="QG_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS",
    )


# -- endpoints


def new_secret() -> str:
    return "whsec_" + base64.b64encode(stdlib_secrets.token_bytes(32)).decode()


def secret_of(settings: Settings, endpoint: WebhookEndpoint) -> str:
    return str(secrets.decrypt(settings, endpoint.secret_encrypted)["secret"])


def get(*, session: Session, webhook_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, webhook_id)
    if endpoint is None:
        raise NotFoundError(f"webhook {webhook_id} not found")
    return endpoint


def query() -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint)


def create(
    *, session: Session, settings: Settings, webhook_in: WebhookCreate
) -> tuple[WebhookEndpoint, str]:
    """The endpoint and its secret: the only time the secret leaves the service."""
    url = str(webhook_in.url)
    check_destination(url, settings=settings, resolve=False)
    teams_service.check_exist(session=session, team_ids=webhook_in.team_ids)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=url,
        description=webhook_in.description,
        event_types=webhook_in.event_types,
        team_ids=webhook_in.team_ids,
        format=webhook_in.format,
        secret_encrypted=secrets.encrypt(settings, {"secret": secret}),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def update(
    *, session: Session, settings: Settings, endpoint: WebhookEndpoint, webhook_in: WebhookUpdate
) -> WebhookEndpoint:
    values = webhook_in.model_dump(exclude_unset=True)
    if values.get("url") is not None:
        values["url"] = str(values["url"])
        check_destination(values["url"], settings=settings, resolve=False)
    if values.get("team_ids"):
        teams_service.check_exist(session=session, team_ids=values["team_ids"])
    for name, value in values.items():
        if value is not None:
            setattr(endpoint, name, value)
    if values.get("is_enabled"):
        endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since = None, None, None
    session.flush()
    return endpoint


def rotate_secret(*, session: Session, settings: Settings, endpoint: WebhookEndpoint) -> str:
    secret = new_secret()
    endpoint.secret_encrypted = secrets.encrypt(settings, {"secret": secret})
    session.flush()
    return secret


def disable(endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    endpoint.is_enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now


# -- payloads and the outbox


def render(endpoint_format: str, payload: dict[str, Any]) -> str:
    if endpoint_format == "slack":
        kind = payload["type"]
        icon = SLACK_ICONS.get(kind) or CHANGE_ICONS.get(kind.rsplit(".", 1)[-1], ":bell:")
        text = f"{icon} *{kind}*: {payload['data'].get('summary', '')}"
        return json.dumps({"text": text}, ensure_ascii=False)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)


def enqueue(
    *,
    session: Session,
    settings: Settings,
    alerts: Sequence[Alert] = (),
    events: Sequence[Event] = (),
    exclude_endpoint: int | None = None,
) -> int:
    """Write one pending delivery per (event, subscribed endpoint), in the caller's
    transaction: the alert and its deliveries commit together or not at all. ``alerts`` are
    alerts just raised; ``events`` are changes to alerts raised before."""
    if not alerts and not events:
        return 0
    session.flush()  # the alerts' ids and created_at go into the payloads
    endpoints = [
        e
        for e in session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.is_enabled.is_(True))
            .order_by(WebhookEndpoint.id)
        )
        if e.id != exclude_endpoint
    ]
    if not endpoints:
        return 0
    edges = tree.edges(session=session)
    scopes = {
        e.id: tree.descendants(roots=e.team_ids, edges=edges) if e.team_ids else None
        for e in endpoints
    }
    now = utcnow()
    count = 0
    for event in [*(raised(a) for a in alerts), *events]:
        alert = event.alert
        for e in endpoints:
            # A team filter narrows the alerts about teams and reps; the service's own events
            # (a delivery given up on) concern no team and reach whoever subscribed to them.
            scope = scopes[e.id] if alert.event_type in RULE_EVENTS else None
            if not subscriptions.wants(e.event_types, event.type) or (
                scope is not None and alert.team_id not in scope
            ):
                continue
            session.add(
                WebhookDelivery(
                    endpoint_id=e.id,
                    alert_id=alert.id,
                    message_id=event.message_id,
                    event_type=event.type,
                    body=render(e.format, event.payload),
                    next_attempt_at=now,
                )
            )
            count += 1
    session.flush()
    return count


def enqueue_test(*, session: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    now = utcnow()
    message_id = "msg_test_" + stdlib_secrets.token_hex(12)
    payload = {
        "type": "webhook.test",
        "timestamp": iso(now),
        "data": {"event_id": message_id, "summary": "Test event from Quota Gap."},
    }
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        message_id=message_id,
        event_type="webhook.test",
        body=render(endpoint.format, payload),
        next_attempt_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def deliveries_query(*, webhook_id: int, status: str | None) -> Select[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return stmt


def delivery_reads(session: Session, deliveries: Sequence[WebhookDelivery]) -> list[DeliveryRead]:
    ids = [d.id for d in deliveries]
    attempts: dict[int, list[DeliveryAttempt]] = {}
    for a in session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(ids))
        .order_by(DeliveryAttempt.id)
    ):
        attempts.setdefault(a.delivery_id, []).append(a)
    return [
        DeliveryRead.model_validate(d).model_copy(
            update={"attempt_log": [AttemptRead.model_validate(a) for a in attempts.get(d.id, [])]}
        )
        for d in deliveries
    ]


def get_delivery(*, session: Session, webhook_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != webhook_id:
        raise NotFoundError(f"delivery {delivery_id} of webhook {webhook_id} not found")
    return delivery


def retry(*, session: Session, settings: Settings, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send again now. A delivery that had failed gets one more attempt, not a new schedule:
    its ``attempts`` already cover the schedule, so one more failure fails it again (and
    ``attempts`` keeps counting the attempts really made)."""
    delivery.status, delivery.next_attempt_at, delivery.locked_until = "pending", utcnow(), None
    session.flush()
    return delivery
