from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from app.alerts.models import RULE_EVENTS, STATES
from app.core.schemas import Page, Schema, UTCDatetime

RuleEvent = Literal[
    "target.missed",
    "target.at_risk",
    "rep.persistent_underperformance",
    "team.wide_gap",
    "deal.big_win",
    "crm.hygiene",
    "rep.coaching_stalled",
]
PeriodKind = Literal["month", "quarter", "year"]
assert set(RuleEvent.__args__) == set(RULE_EVENTS)  # type: ignore[attr-defined]
AlertState = Literal["open", "resolved"]
assert set(AlertState.__args__) == set(STATES)  # type: ignore[attr-defined]
ResolvedReason = Literal["condition_cleared", "period_closed", "subject_gone"]

# What each rule type reads from ``params``, with its default (documented in docs/alerts.md).
PARAM_DEFAULTS: dict[str, dict[str, float]] = {
    "target.missed": {},
    "target.at_risk": {"pace_below": 0.8, "min_elapsed": 0.25},
    "rep.persistent_underperformance": {"consecutive_misses": 3},
    "team.wide_gap": {"share_below": 0.5, "min_reps": 3},
    "deal.big_win": {"top_percentile": 95.0},  # and optionally min_amount
    "crm.hygiene": {"stale_deals": 5},  # and optionally past_due_deals
    "rep.coaching_stalled": {"periods": 3},
}
OPTIONAL_PARAMS = {"deal.big_win": {"min_amount"}, "crm.hygiene": {"past_due_deals"}}
# Counts of periods: at least one (0 would fire for every focus ever named).
AT_LEAST_ONE = {"rep.coaching_stalled": {"periods"}}


class AlertRuleBase(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["Missed monthly quota"])
    event_type: RuleEvent
    is_enabled: bool = True
    team_ids: list[int] = Field(
        default_factory=list, description="Only these teams and their sub-teams; empty: all."
    )
    metrics: list[str] = Field(
        default_factory=list, description="Only these metrics (target rules); empty: all."
    )
    period_kinds: list[PeriodKind] = Field(
        default_factory=list, description="Period kinds to watch; empty: month."
    )
    params: dict[str, float] = Field(
        default_factory=dict,
        description="Thresholds of the rule type, e.g. {'pace_below': 0.8, 'min_elapsed': 0.25} "
        "for target.at_risk; omitted ones take their defaults.",
        examples=[{"pace_below": 0.8, "min_elapsed": 0.25}],
    )


def check_params(event_type: str, params: dict[str, float]) -> dict[str, float]:
    allowed = set(PARAM_DEFAULTS[event_type]) | OPTIONAL_PARAMS.get(event_type, set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown params for {event_type}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
        )
    if any(v < 0 for v in params.values()):
        raise ValueError("params must not be negative")
    small = sorted(k for k in AT_LEAST_ONE.get(event_type, set()) & set(params) if params[k] < 1)
    if small:
        raise ValueError(f"{', '.join(small)} must be at least 1 for {event_type}")
    return {**PARAM_DEFAULTS[event_type], **params}


class AlertRuleCreate(AlertRuleBase):
    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        event_type = info.data.get("event_type")
        return check_params(event_type, v) if event_type else v


class AlertRuleUpdate(Schema):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"params": {"pace_below": 0.7}, "is_enabled": True}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_enabled: bool | None = None
    team_ids: list[int] | None = None
    metrics: list[str] | None = None
    period_kinds: list[PeriodKind] | None = None
    params: dict[str, float] | None = None


class AlertRuleRead(AlertRuleBase):
    id: int
    created_at: UTCDatetime
    updated_at: UTCDatetime


class AlertRulePage(Page[AlertRuleRead]):
    pass


class AlertRead(Schema):
    id: int
    event_id: str = Field(description="Stable id; the webhook-id of its deliveries.")
    event_type: str = Field(description="The rule type that raised it, e.g. target.missed.")
    rule_id: int | None = Field(description="The rule; null once the rule was deleted.")
    subject_type: str = Field(description="rep, team, deal or delivery.")
    subject_id: int
    rep_id: int | None
    team_id: int | None
    metric: str | None
    period: str | None
    status: str | None = Field(
        description="The subject's performance status when the alert was raised (missed, "
        "at_risk, won...); the current one is current.status."
    )
    summary: str = Field(description="What the alert said when raised.")
    data: dict[str, Any] = Field(
        description="The numbers behind the alert when raised, and their sources; never rewritten."
    )
    snapshot_id: int | None = Field(description="The snapshot the alert was raised from.")
    created_at: UTCDatetime = Field(description="When the alert was raised.")
    state: AlertState = Field(
        description="open: the condition held at the last evaluation that judged it; "
        "resolved: it no longer holds (see resolved_reason)."
    )
    current: dict[str, Any] | None = Field(
        description="The figures as of the last evaluation that judged the alert (with "
        "current.status), in the shape of data; for a resolved alert, the figures at "
        "resolution. Null for alerts not judged since they were raised before lifecycles."
    )
    current_summary: str | None = Field(description="The summary of the current figures.")
    current_snapshot_id: int | None = Field(
        description="The snapshot the current figures come from."
    )
    revision: int = Field(
        description="How many .updated and .resolved events the alert has had; part of "
        "their webhook-ids."
    )
    updated_at: UTCDatetime | None = Field(
        description="When material figures last changed (the last .updated event); null if "
        "they never did."
    )
    resolved_at: UTCDatetime | None = Field(description="When the alert was resolved.")
    resolved_reason: ResolvedReason | None = Field(
        description="condition_cleared: the subject no longer meets the rule (current holds "
        "the figures at resolution); period_closed: an at-risk alert's period ended (the "
        "target was then met or missed: current.status); subject_gone: the rule found no "
        "figures for it any more (target deleted, rep deactivated, deal no longer won), "
        "current keeps the last known."
    )


class AlertPage(Page[AlertRead]):
    pass
