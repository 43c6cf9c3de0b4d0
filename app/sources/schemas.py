from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.core.schemas import Page, Schema, UTCDatetime

Kind = Literal["hubspot", "salesforce", "pipedrive"]


def _checked_base_url(v: str | None) -> str | None:
    if v is not None and not v.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return v.rstrip("/") if v else v


class Schedule(Schema):
    """When the source syncs: every N minutes (or seconds), or a cron expression (UTC)."""

    @model_validator(mode="after")
    def _valid_cron(self) -> Schedule:
        if self.cron:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"bad cron expression: {exc}") from exc
        return self

    interval_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    interval_seconds: int | None = Field(
        default=None, ge=1, le=7 * 24 * 3600, description="Finer than minutes (tests, demos)."
    )
    cron: str | None = Field(default=None, examples=["0 */2 * * *"])
    resync_every_days: int | None = Field(
        default=None,
        ge=0,
        le=365,
        description="How often a scheduled sync is a full resync, which catches what an "
        "incremental sync cannot see (records purged from the CRM, association changes): "
        "days since the last one; 0 never. Unset: every 7 days.",
        examples=[7],
    )


class SourceBase(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["HubSpot EU"])
    base_url: str | None = Field(
        default=None,
        max_length=500,
        description="Override: Salesforce instance URL, a regional host, or a sandbox CRM. "
        "Loopback, private and link-local addresses are refused (422) unless "
        "QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS=true; so are such credentials.instance_url, "
        "login_url, token_url and api_domain.",
        examples=["https://acme.my.salesforce.com"],
    )
    schedule: Schedule = Field(default_factory=lambda: Schedule(interval_minutes=60))
    config: dict[str, Any] = Field(default_factory=dict)
    is_enabled: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        return _checked_base_url(v)


class SourceCreate(SourceBase):
    kind: Kind
    credentials: dict[str, Any] = Field(
        description="Stored encrypted; never returned. HubSpot: access_token (private app) or "
        "client_id, client_secret, refresh_token. Salesforce: client_id, client_secret, "
        "refresh_token (and instance_url). Pipedrive: api_token, or OAuth as HubSpot.",
        examples=[{"access_token": "pat-eu1-..."}],
    )


class SourceUpdate(Schema):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"schedule": {"interval_minutes": 15}, "is_enabled": True}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(
        default=None,
        max_length=500,
        description="A new host needs `credentials` in the same request: the stored ones were "
        "issued for the old host and never follow it.",
    )
    credentials: dict[str, Any] | None = None
    schedule: Schedule | None = None
    config: dict[str, Any] | None = None
    is_enabled: bool | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        return _checked_base_url(v)


class SyncRunRead(Schema):
    id: int
    source_id: int
    kind: str
    status: str
    started_at: UTCDatetime
    finished_at: UTCDatetime | None
    fetched: int
    inserted: int
    updated: int
    deleted: int
    quarantined: int
    pages: int
    error: str | None
    details: dict[str, Any]


class SourceRead(Schema):
    id: int
    kind: str
    name: str
    base_url: str | None
    schedule: dict[str, Any]
    config: dict[str, Any]
    is_enabled: bool
    has_credentials: bool
    last_success_at: UTCDatetime | None
    last_error: str | None
    consecutive_failures: int
    last_run: SyncRunRead | None = None
    cursors: dict[str, str | None] = Field(default_factory=dict)
    created_at: UTCDatetime
    updated_at: UTCDatetime


class SourcePage(Page[SourceRead]):
    pass


class SyncRunPage(Page[SyncRunRead]):
    pass


class QuarantineRead(Schema):
    id: int
    source_id: int
    object_type: str
    external_id: str | None
    reason: str
    payload: dict[str, Any]
    created_at: UTCDatetime
    last_seen_at: UTCDatetime


class QuarantinePage(Page[QuarantineRead]):
    pass
