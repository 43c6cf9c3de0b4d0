from __future__ import annotations

from typing import Literal

from app.core.schemas import Page, Schema, UTCDatetime

ActivityType = Literal["call", "email", "meeting", "task"]


class ActivityRead(Schema):
    id: int
    source_id: int
    external_id: str
    rep_id: int | None
    owner_external_id: str | None
    type: ActivityType
    subject: str | None
    occurred_at: UTCDatetime
    deal_external_id: str | None
    source_modified_at: UTCDatetime | None
    is_deleted: bool
    synced_at: UTCDatetime


class ActivityPage(Page[ActivityRead]):
    pass
