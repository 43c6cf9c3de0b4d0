from __future__ import annotations

from datetime import date
from typing import Literal

from app.core.schemas import Page, Schema, UTCDatetime

DealStatus = Literal["open", "won", "lost"]


class DealRead(Schema):
    id: int
    source_id: int
    external_id: str
    rep_id: int | None
    owner_external_id: str | None
    name: str | None
    account: str | None
    amount: float | None
    currency: str
    stage: str | None
    pipeline: str | None
    probability: float | None
    status: DealStatus
    created_at: UTCDatetime | None
    close_date: date | None
    closed_at: UTCDatetime | None
    source_modified_at: UTCDatetime | None
    is_deleted: bool
    synced_at: UTCDatetime


class DealPage(Page[DealRead]):
    pass
