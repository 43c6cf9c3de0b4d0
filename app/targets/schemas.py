from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from app.core.schemas import Page, Schema, UTCDatetime

Method = Literal["last_year_growth", "trailing_average"]
Fallback = Literal["none", "trailing_average", "team_median"]


class TargetBase(Schema):
    rep_id: int | None = Field(default=None, examples=[12])
    team_id: int | None = Field(default=None, examples=[None])
    metric: str = Field(examples=["won_revenue"])
    period: str = Field(examples=["2026-Q4"], description="2026-11, 2026-Q4, FY2026, 2026-W48")
    value: float = Field(ge=0, examples=[250000])

    @model_validator(mode="after")
    def _one_subject(self) -> TargetBase:
        if (self.rep_id is None) == (self.team_id is None):
            raise ValueError("set exactly one of rep_id and team_id")
        return self


class TargetCreate(TargetBase):
    pass


class TargetUpdate(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"value": 275000}]})

    value: float = Field(ge=0)


class TargetRead(TargetBase):
    id: int
    period_kind: str
    created_at: UTCDatetime
    updated_at: UTCDatetime


class TargetPage(Page[TargetRead]):
    pass


class BulkResult(Schema):
    created: int
    updated: int
    unchanged: int
    items: list[TargetRead]


class BulkTargetItem(TargetCreate):
    # Suggestions carry rep_name, method and basis; accepting them means posting them back as is.
    model_config = ConfigDict(extra="ignore")


class BulkTargets(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "rep_id": 12,
                            "metric": "won_revenue",
                            "period": "2026-Q4",
                            "value": 250000,
                        },
                        {"team_id": 3, "metric": "won_deals", "period": "2026-11", "value": 40},
                    ]
                }
            ]
        }
    )

    items: list[BulkTargetItem] = Field(max_length=50_000)


class SuggestRequest(Schema):
    period: str = Field(examples=["2027-Q1"])
    metric: str = Field(default="won_revenue")
    method: Method = "last_year_growth"
    growth_pct: float = Field(default=3.0, ge=-100, le=1000)
    trailing_periods: int = Field(default=3, ge=1, le=24)
    team_id: int | None = None
    fallback: Fallback = Field(
        default="none",
        description="For a rep without the history the method needs: none (value null, with "
        "the reason), trailing_average (with last_year_growth: the trailing average instead) "
        "or team_median (the median suggestion of the rep's team).",
    )


class Suggestion(Schema):
    """A proposed target for one rep, with what it was computed from and any caveat."""

    rep_id: int
    team_id: None = Field(default=None, description="Always null: suggestions are per rep.")
    metric: str
    period: str
    value: float | None = Field(
        description="The proposed target; null when the rep lacks the history the method needs "
        "and no fallback applies (see reason). Post back only items with a value."
    )
    rep_name: str
    method: str = Field(
        description="What value was computed with: the method, or 'method:fallback' "
        "(e.g. last_year_growth:trailing_average) when a fallback was used."
    )
    basis: dict[str, float | None] = Field(
        description="The history behind the value: actual per period used; null for a period "
        "outside the rep's history (0 is a period in it without bookings)."
    )
    history_start: date | None = Field(
        description="Where the rep's history starts: the later of their start date (else first "
        "deal or activity) and the first record of the data; null when unknown."
    )
    reason: str | None = Field(
        description="Why value is null, comes from a fallback, covers only part of the "
        "history, or is 0; null when computed as asked from full history."
    )


class SuggestResponse(Schema):
    items: list[Suggestion]
    note: str = "Nothing was written. POST the items you accept to /api/v1/targets/bulk."
