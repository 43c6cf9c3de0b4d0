"""Alert rules and the alerts they raise.

An alert's ``event_id`` is derived from (rule, event type, subject, metric, period), so
evaluating the same snapshot again finds the alert already there and raises nothing new; the
``event_id`` is also the ``webhook-id`` its deliveries carry, so receivers can deduplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow

RULE_EVENTS = (
    "target.missed",
    "target.at_risk",
    "rep.persistent_underperformance",
    "team.wide_gap",
    "deal.big_win",
    "crm.hygiene",
    "rep.coaching_stalled",
)
# What happens to a rule's alert after it was raised: its figures changed while the condition
# still holds (``target.missed.updated``), or the condition cleared (``target.missed.resolved``).
CHANGES = ("updated", "resolved")
CHANGE_EVENTS = tuple(f"{t}.{change}" for t in RULE_EVENTS for change in CHANGES)
# Raised by the service itself, not by a rule.
SYSTEM_EVENTS = ("alert.delivery_exhausted", "webhook.test")
EVENT_TYPES = RULE_EVENTS + CHANGE_EVENTS + SYSTEM_EVENTS
# open: the condition held at the last evaluation that looked at it; resolved: it cleared.
STATES = ("open", "resolved")


class AlertRule(Base):
    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(50))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    # Empty lists mean "every team" / "every metric" / the rule's default period kinds.
    team_ids: Mapped[list[int]] = mapped_column(default=list)
    metrics: Mapped[list[str]] = mapped_column(default=list)
    period_kinds: Mapped[list[str]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_event_type_created_at", "event_type", "created_at"),
        Index("ix_alerts_rep_id", "rep_id"),
        Index("ix_alerts_team_id", "team_id"),
        Index("ix_alerts_state_period", "state", "period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(50))
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="SET NULL"), index=True
    )
    subject_type: Mapped[str] = mapped_column(String(20))  # rep | team | deal | delivery
    subject_id: Mapped[int]
    rep_id: Mapped[int | None]
    team_id: Mapped[int | None]
    metric: Mapped[str | None] = mapped_column(String(50))
    period: Mapped[str | None] = mapped_column(String(10))
    # The subject's performance status when the alert was raised (missed, at_risk, won...).
    status: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)
    # The numbers behind the alert when raised, and the links to the rows and records they
    # come from. Never rewritten: what a receiver was told stays answerable.
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snapshot_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The lifecycle (app.alerts.lifecycle): the figures as of the last evaluation that judged
    # the alert, beside the ones it was raised on.
    state: Mapped[str] = mapped_column(String(20), default="open", server_default="open")
    current: Mapped[dict[str, Any] | None]
    current_summary: Mapped[str | None] = mapped_column(Text)
    current_snapshot_id: Mapped[int | None]
    # Bumped by each .updated or .resolved event; part of that event's message id.
    revision: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the figures last changed materially (the last .updated event).
    updated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_reason: Mapped[str | None] = mapped_column(String(30))
