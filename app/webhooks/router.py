from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status

from app.core.pagination import CursorParam, LimitParam, paginate
from app.core.schemas import Schema
from app.http.deps import SessionDep, SettingsDep, TargetWriterKey
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter()


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
def create_webhook(
    webhook_in: WebhookCreate, session: SessionDep, settings: SettingsDep, _: TargetWriterKey
) -> WebhookCreated:
    """Subscribe a URL to alert events. The signing secret is in this answer only."""
    endpoint, secret = service.create(session=session, settings=settings, webhook_in=webhook_in)
    return WebhookCreated.model_validate(
        {**WebhookRead.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.get("", response_model=WebhookPage)
def list_webhooks(
    session: SessionDep, _: TargetWriterKey, cursor: CursorParam = None, limit: LimitParam = 100
) -> WebhookPage:
    """Webhook endpoints with their health (never their secrets)."""
    rows, next_cursor = paginate(
        session, service.query(), WebhookEndpoint.id, cursor=cursor, limit=limit
    )
    return WebhookPage(items=[WebhookRead.model_validate(e) for e in rows], next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=WebhookRead)
def read_webhook(webhook_id: int, session: SessionDep, _: TargetWriterKey) -> WebhookRead:
    """An endpoint with its health: enabled, why it was disabled, failing since when."""
    return WebhookRead.model_validate(service.get(session=session, webhook_id=webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookRead)
def update_webhook(
    webhook_id: int,
    webhook_in: WebhookUpdate,
    session: SessionDep,
    settings: SettingsDep,
    _: TargetWriterKey,
) -> WebhookRead:
    """Change an endpoint; ``is_enabled: true`` re-enables a disabled one (its pending
    deliveries resume)."""
    endpoint = service.get(session=session, webhook_id=webhook_id)
    return WebhookRead.model_validate(
        service.update(session=session, settings=settings, endpoint=endpoint, webhook_in=webhook_in)
    )


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: int, session: SessionDep, _: TargetWriterKey) -> Response:
    """Delete an endpoint and its pending deliveries."""
    session.delete(service.get(session=session, webhook_id=webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class SecretRead(Schema):
    secret: str


@router.post("/{webhook_id}/rotate-secret", response_model=SecretRead)
def rotate_secret(
    webhook_id: int, session: SessionDep, settings: SettingsDep, _: TargetWriterKey
) -> SecretRead:
    """A new signing secret, shown once; the old one stops signing at once."""
    endpoint = service.get(session=session, webhook_id=webhook_id)
    return SecretRead(
        secret=service.rotate_secret(session=session, settings=settings, endpoint=endpoint)
    )


@router.post(
    "/{webhook_id}/test", response_model=DeliveryRead, status_code=status.HTTP_202_ACCEPTED
)
def send_test(webhook_id: int, session: SessionDep, _: TargetWriterKey) -> DeliveryRead:
    """Queue a signed ``webhook.test`` event to the endpoint; follow it in its deliveries."""
    endpoint = service.get(session=session, webhook_id=webhook_id)
    return DeliveryRead.model_validate(service.enqueue_test(session=session, endpoint=endpoint))


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    webhook_id: int,
    session: SessionDep,
    _: TargetWriterKey,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> DeliveryPage:
    """Deliveries to the endpoint, each with its per-attempt log (status, error, timing)."""
    service.get(session=session, webhook_id=webhook_id)
    rows, next_cursor = paginate(
        session,
        service.deliveries_query(webhook_id=webhook_id, status=status),
        WebhookDelivery.id,
        cursor=cursor,
        limit=limit,
    )
    return DeliveryPage(items=service.delivery_reads(session, rows), next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
)
def retry_delivery(
    webhook_id: int,
    delivery_id: int,
    session: SessionDep,
    settings: SettingsDep,
    _: TargetWriterKey,
) -> DeliveryRead:
    """Send a delivery again now, under the same webhook-id."""
    delivery = service.get_delivery(session=session, webhook_id=webhook_id, delivery_id=delivery_id)
    return DeliveryRead.model_validate(
        service.retry(session=session, settings=settings, delivery=delivery)
    )
