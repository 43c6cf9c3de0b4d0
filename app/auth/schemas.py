from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from app.core.schemas import Page, Schema, UTCDatetime

Role = Literal["admin", "analyst", "manager", "viewer"]


class ApiKeyCreate(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"role": "viewer", "name": "wall TV", "expires_at": "2027-06-30T00:00:00Z"}
            ]
        }
    )

    role: Role
    name: str = Field(default="", max_length=200)
    rep_id: int | None = Field(default=None, description="Required for role manager.")
    expires_at: UTCDatetime | None = None


class ApiKeyRead(Schema):
    id: int
    name: str
    prefix: str
    role: Role
    rep_id: int | None
    created_at: UTCDatetime
    expires_at: UTCDatetime | None
    revoked_at: UTCDatetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The API key itself. Shown once; store it now.")


class ApiKeyPage(Page[ApiKeyRead]):
    pass
