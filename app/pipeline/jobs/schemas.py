from __future__ import annotations

from typing import Any, Literal

from app.core.schemas import Page, Schema, UTCDatetime


class JobRead(Schema):
    id: int
    kind: Literal["sync", "compute"]
    source_id: int | None
    trigger: str
    status: Literal["queued", "running", "succeeded", "paused", "failed"]
    stage: str | None
    progress: dict[str, Any]
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


class JobPage(Page[JobRead]):
    pass
