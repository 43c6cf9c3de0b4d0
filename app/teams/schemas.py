from __future__ import annotations

from pydantic import Field

from app.schemas import Page, Schema, UTCDatetime


class TeamBase(Schema):
    name: str = Field(min_length=1, max_length=200)
    manager_id: int | None = None
    parent_id: int | None = None


class TeamCreate(TeamBase):
    pass


class TeamUpdate(Schema):
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
