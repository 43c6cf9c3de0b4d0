"""The base every API schema derives from, and the shared page envelope."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

from app.core.exceptions import InvalidInputError


def _utc_iso(v: datetime) -> str:
    return v.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Every datetime leaves the API in UTC with a trailing Z, whatever the backend returned.
UTCDatetime = Annotated[AwareDatetime, PlainSerializer(_utc_iso, return_type=str)]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


T = TypeVar("T")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """Keyset cursors are opaque to clients; a tampered one is a 422, not a 500."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        if prefix != "id":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidInputError(
            "invalid cursor", details=[{"field": "cursor", "message": "not a cursor"}]
        ) from exc
