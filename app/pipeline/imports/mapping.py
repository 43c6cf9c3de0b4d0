"""The column mapping that lets an export from any CRM load (see examples/*/mapping.yaml).

A field is either a column name (``amount: close_value``), a template over columns in braces
(``name: "{product} for {account}"``), or a constant prefixed with ``=`` (``currency: "=USD"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.exceptions import InvalidInputError

_TEMPLATE = re.compile(r"\{([^{}]+)\}")


ActivityType = Literal["call", "email", "meeting", "task"]


def _default_types() -> dict[str, ActivityType]:
    return {"call": "call", "email": "email", "meeting": "meeting", "task": "task"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageRule(_Strict):
    status: Literal["open", "won", "lost"]
    probability: float | None = Field(default=None, ge=0, le=1)


class RepsMapping(_Strict):
    name: str
    email: str | None = None
    manager: str | None = None
    manager_email: str | None = None
    team: str | None = None
    parent_team: str | None = None
    start_date: str | None = None
    active: str | None = None


class DealsMapping(_Strict):
    id: str
    owner: str
    name: str | None = None
    account: str | None = None
    amount: str | None = None
    currency: str = "=USD"
    stage: str
    pipeline: str | None = None
    created: str | None = None
    close_date: str | None = None
    closed_at: str | None = None
    modified: str | None = None
    deleted: str | None = None
    stages: dict[str, StageRule]


class ActivitiesMapping(_Strict):
    id: str
    owner: str
    type: str
    occurred_at: str
    subject: str | None = None
    deal_id: str | None = None
    modified: str | None = None
    types: dict[str, ActivityType] = Field(default_factory=_default_types)


class Mapping(_Strict):
    source: str = Field(description="Name of the CSV source the records belong to.")
    owner_key: Literal["name", "email", "id"] = Field(
        default="email", description="What the deals' and activities' owner column holds."
    )
    date_format: str | None = Field(default=None, description="strptime format; None: ISO 8601")
    timezone: str = "UTC"
    reps: RepsMapping | None = None
    deals: DealsMapping | None = None
    activities: ActivitiesMapping | None = None

    @classmethod
    def load(cls, path: Path) -> Mapping:
        return cls.parse_text(path.read_text(encoding="utf-8"))

    @classmethod
    def parse_text(cls, text: str) -> Mapping:
        try:
            data = yaml.safe_load(text)
            return cls.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            details = (
                [
                    {"field": "mapping." + ".".join(map(str, e["loc"])), "message": e["msg"]}
                    for e in exc.errors()
                ]
                if isinstance(exc, ValidationError)
                else [{"field": "mapping", "message": str(exc)}]
            )
            raise InvalidInputError("invalid mapping file", details=details) from exc


def column_refs(spec: str | None) -> list[str]:
    if spec is None or spec.startswith("="):
        return []
    refs = _TEMPLATE.findall(spec)
    return refs or [spec]


def evaluate(frame: pd.DataFrame, spec: str | None) -> pd.Series:
    """A mapped field for every row: column, template or constant; '' stays '' (missing)."""
    if spec is None:
        return pd.Series("", index=frame.index, dtype="object")
    if spec.startswith("="):
        return pd.Series(spec[1:], index=frame.index, dtype="object")
    refs = _TEMPLATE.findall(spec)
    if not refs:
        return frame[spec].astype("object")
    parts = _TEMPLATE.split(spec)
    out = pd.Series("", index=frame.index, dtype="object")
    # split() alternates literal text and column names.
    for i, part in enumerate(parts):
        out = out + (frame[part].astype("object") if i % 2 else part)
    empty = pd.Series(True, index=frame.index)
    for ref in refs:
        empty &= frame[ref].astype("object").eq("")
    return out.where(~empty, "")


def missing_columns(mapping: BaseModel, header: list[str]) -> list[str]:
    needed: list[str] = []
    for name, value in mapping:
        if isinstance(value, str) and name not in {"stages", "types"}:
            needed += column_refs(value)
    return sorted(set(needed) - set(header))
