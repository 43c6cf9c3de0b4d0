from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.schemas import Schema, UTCDatetime

Status = Literal["achieved", "on_track", "at_risk", "missed"]


class SnapshotRead(Schema):
    id: int = Field(description="The snapshot version the figures come from.")
    kind: str
    trigger: str
    as_of: date
    computed_at: UTCDatetime
    periods: list[str]
    rows_written: int
    duration_ms: int
    details: dict[str, Any]


class SnapshotPage(Schema):
    items: list[SnapshotRead]


class ComputeRequest(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"full": False}]})

    full: bool = Field(default=False, description="Recompute every period, not only dirty ones.")
    as_of: date | None = Field(default=None, description="Compute as if today were this date.")


class PerformanceRead(Schema):
    """A subject's figure for a metric and period, against its target, and how it is paced."""

    subject_type: Literal["rep", "team"]
    rep_id: int | None
    rep_name: str | None = None
    team_id: int | None
    team_name: str | None = None
    manager_id: int | None = None
    metric: str
    period: str
    period_kind: str
    period_start: date
    period_end: date
    status: Status
    actual: float | None
    target: float | None = Field(description="Effective target: target_full x proration x ramp.")
    target_full: float | None
    proration_factor: float | None
    ramp_factor: float | None
    target_note: str | None
    gap: float | None = Field(description="target - actual (actual - target if lower is better)")
    attainment: float | None = Field(description="actual / target")
    elapsed_fraction: float | None
    pacing: str | None
    expected_to_date: float | None
    pace_gap: float | None = Field(description="actual - expected_to_date")
    projected: float | None = Field(description="run-rate to the end of the period")
    open_pipeline: float | None
    weighted_pipeline: float | None
    projected_with_pipeline: float | None
    coverage: float | None = Field(description="open pipeline due in the period / remaining")
    coverage_needed: float | None = Field(description="1 / the subject's trailing win rate")
    consecutive_misses: int
    persistent_underperformer: bool
    rank_in_team: int | None = None
    rank_in_company: int | None = None
    percentile_in_company: float | None = None
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The inputs of the metric's formula for this period."
    )
    records: str | None = Field(default=None, description="Where to list the source records.")
    snapshot: int


class PerformancePage(Schema):
    items: list[PerformanceRead]
    next_cursor: str | None = None
    snapshot: SnapshotRead | None


class CoachingRead(Schema):
    rep_id: int
    rep_name: str
    team_id: int | None
    period: str
    period_kind: str
    coaching_focus: str | None = Field(
        description="The weakest funnel driver against the team, or null at team level."
    )
    focus_reason: str | None
    drivers: dict[str, Any]
    snapshot: int


class LeaderboardEntry(Schema):
    rank: int
    percentile: float
    rep_id: int
    rep_name: str
    team_id: int | None
    team_name: str | None
    value: float | None
    target: float | None = None
    attainment: float | None = None


class LeaderboardRead(Schema):
    period: str
    metric: str
    items: list[LeaderboardEntry]
    snapshot: int | None


class TeamPerformanceRead(Schema):
    team_id: int
    team_name: str
    period: str
    rollup: list[dict[str, Any]]
    rows: list[PerformanceRead]
    snapshot: int | None


class SummaryTeam(Schema):
    team_id: int
    team_name: str
    reps: int
    actual: float | None
    target: float | None
    attainment: float | None
    reps_below_target: int
    share_below_target: float | None
    team_wide_gap: bool


class SummaryRep(Schema):
    rep_id: int
    rep_name: str
    team_id: int | None
    status: str
    actual: float | None
    target: float | None
    gap: float | None
    attainment: float | None
    pace_gap: float | None
    projected: float | None
    coaching_focus: str | None


class SummarySource(Schema):
    source_id: int
    name: str
    kind: str
    last_success_at: UTCDatetime | None
    last_error: str | None = Field(
        description="The last sync's error; null for viewer keys, which may not read sources."
    )
    consecutive_failures: int


class SummaryRead(Schema):
    """A wallboard's worth of figures for one period and metric, from one snapshot."""

    period: str
    metric: str
    snapshot: int | None
    computed_at: UTCDatetime | None
    totals: dict[str, float | int | None] = Field(
        description="Over the visible reps with a target: actual, target, attainment (Σ actual "
        "/ Σ target), reps, reps_with_target, reps_below_target."
    )
    attainment_distribution: dict[str, int] = Field(
        description="Reps per attainment band: <50%, 50-80%, 80-100%, 100-120%, >=120%, no target."
    )
    teams: list[SummaryTeam]
    at_risk: list[SummaryRep] = Field(description="Reps at risk or missed, largest gap first.")
    sources: list[SummarySource]
