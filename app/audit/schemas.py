from __future__ import annotations

from typing import Any

from pydantic import Field

from app.core.schemas import Page, Schema, UTCDatetime


class AuditRead(Schema):
    id: int
    at: UTCDatetime
    actor: str = Field(description='"key:<id> (<role>)" for API calls, "system" otherwise.')
    actor_key_id: int | None
    action: str = Field(description="create, update or delete")
    entity_type: str = Field(description="target, source, alert_rule, webhook or api_key")
    entity_id: int | None
    before: dict[str, Any] | None = Field(description="Changed fields before (secrets redacted).")
    after: dict[str, Any] | None = Field(description="Changed fields after (secrets redacted).")


class AuditPage(Page[AuditRead]):
    pass
