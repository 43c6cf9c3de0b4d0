from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, ConfigDict, Field, field_validator

from app.core.schemas import Page, Schema, UTCDatetime
from app.webhooks import subscriptions

Format = Literal["standard", "slack"]


class WebhookBase(Schema):
    url: AnyHttpUrl = Field(examples=["https://hooks.example.com/quota-gap"])
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(
        min_length=1,
        examples=[["target.missed", "target.at_risk", "*.resolved"]],
        description="Event types to receive (GET /api/v1/alerts/event-types lists them), or "
        "patterns over the alert events: '*' for every alert event, '*.resolved' for every "
        "resolution, 'target.missed.*' for a type's updates and resolution.",
    )
    team_ids: list[int] = Field(
        default_factory=list, description="Only alerts about these teams (and sub-teams)."
    )
    format: Format = Field(
        default="standard",
        description="standard: Standard Webhooks JSON; slack: {'text': ...} for Slack-style "
        "incoming-webhook URLs.",
    )

    _events = field_validator("event_types")(subscriptions.check)


class WebhookCreate(WebhookBase):
    pass


class WebhookUpdate(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"event_types": ["target.missed", "deal.big_win"], "is_enabled": True}]
        }
    )

    url: AnyHttpUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, min_length=1)
    team_ids: list[int] | None = None
    format: Format | None = None
    is_enabled: bool | None = Field(
        default=None, description="true re-enables an endpoint that was disabled."
    )

    @field_validator("event_types")
    @classmethod
    def _events(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else subscriptions.check(v)


class WebhookRead(WebhookBase):
    id: int
    url: str  # type: ignore[assignment]
    is_enabled: bool
    disabled_reason: str | None
    disabled_at: UTCDatetime | None
    failing_since: UTCDatetime | None
    last_success_at: UTCDatetime | None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="Signing secret (whsec_...). Shown once: store it now; "
        "verify payloads with the standardwebhooks library."
    )


class WebhookPage(Page[WebhookRead]):
    pass


class AttemptRead(Schema):
    id: int
    attempted_at: UTCDatetime
    status_code: int | None
    error: str | None
    response_body: str | None
    duration_ms: int
    next_attempt_at: UTCDatetime | None


class DeliveryRead(Schema):
    id: int
    endpoint_id: int
    alert_id: int | None
    message_id: str = Field(description="The webhook-id header: the alert's event_id.")
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UTCDatetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: UTCDatetime
    delivered_at: UTCDatetime | None
    attempt_log: list[AttemptRead] = Field(default_factory=list)


class DeliveryPage(Page[DeliveryRead]):
    pass
