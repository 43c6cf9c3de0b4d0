from __future__ import annotations

from datetime import date

from pydantic import ConfigDict, EmailStr, Field

from app.core.schemas import Page, Schema, UTCDatetime


class RepIdentityRead(Schema):
    source_id: int
    external_id: str
    email: str | None


class RepBase(Schema):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = None
    team_id: int | None = None
    manager_id: int | None = None
    role: str = "rep"
    is_active: bool = True
    start_date: date | None = None


class RepUpdate(Schema):
    """What sales ops may change on a rep; the rest comes from the CRMs."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"team_id": 3, "manager_id": 7, "start_date": "2026-09-01"}]
        }
    )

    email: EmailStr | None = None
    team_id: int | None = None
    effective_date: date | None = Field(
        default=None,
        description="When a team move takes effect (today when not given; not in the future). "
        "Team figures count the rep for the old team before it and the new one from it; a "
        "move inside a period splits it by days.",
        examples=["2026-10-01"],
    )
    manager_id: int | None = None
    is_active: bool | None = None
    start_date: date | None = None


class RepRead(RepBase):
    id: int
    team_name: str | None = None
    manager_name: str | None = None
    identities: list[RepIdentityRead] = []
    created_at: UTCDatetime
    updated_at: UTCDatetime


class RepPage(Page[RepRead]):
    pass
