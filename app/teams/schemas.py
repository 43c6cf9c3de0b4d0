from __future__ import annotations

from pydantic import ConfigDict, Field

from app.core.schemas import Page, Schema, UTCDatetime


class TeamBase(Schema):
    name: str = Field(min_length=1, max_length=200)
    manager_id: int | None = None
    parent_id: int | None = None


class TeamCreate(TeamBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Enterprise East", "manager_id": 7, "parent_id": 1}]
        }
    )


class TeamUpdate(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"manager_id": 9}]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    manager_id: int | None = None
    parent_id: int | None = None


class TeamRead(TeamBase):
    id: int
    manager_name: str | None = None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class TeamPage(Page[TeamRead]):
    pass
