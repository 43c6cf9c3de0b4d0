from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

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
    worker: str | None = Field(
        description="The process running it, host:pid (the API, a worker or the CLI).",
        examples=["qg-worker-1:4121"],
    )
    heartbeat_at: UTCDatetime | None = Field(
        description="When that process last said it is alive; a running job whose heartbeat "
        "is older than QG_JOB_LEASE_SECONDS is failed as interrupted."
    )
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


class JobPage(Page[JobRead]):
    pass
