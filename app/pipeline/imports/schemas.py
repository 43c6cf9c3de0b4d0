from __future__ import annotations

from typing import Any

from pydantic import Field

from app.core.schemas import Schema


class ObjectResultRead(Schema):
    rows: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    errors: list[dict[str, Any]]


class ImportRead(Schema):
    source_id: int
    run_id: int
    reps: ObjectResultRead | None = None
    deals: ObjectResultRead | None = None
    activities: ObjectResultRead | None = None
    compute_job_id: int | None = None
    notices: list[str] = Field(
        default_factory=list,
        description="What the import could not do by itself and what to run: for example "
        "records dated before the compute's history horizon (QG_HISTORY_MONTHS).",
    )
