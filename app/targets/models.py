from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow


class Target(Base):
    """A goal for one rep or one team, for one metric and one period."""

    __tablename__ = "targets"
    __table_args__ = (
        CheckConstraint("(rep_id IS NULL) <> (team_id IS NULL)", name="one_subject"),
        CheckConstraint("value >= 0", name="value_not_negative"),
        # Two partial indexes because a plain unique index treats NULLs as distinct.
        Index(
            "uq_targets_rep_metric_period",
            "rep_id",
            "metric",
            "period",
            unique=True,
            sqlite_where=text("rep_id IS NOT NULL"),
            postgresql_where=text("rep_id IS NOT NULL"),
        ),
        Index(
            "uq_targets_team_metric_period",
            "team_id",
            "metric",
            "period",
            unique=True,
            sqlite_where=text("team_id IS NOT NULL"),
            postgresql_where=text("team_id IS NOT NULL"),
        ),
        Index("ix_targets_period_metric", "period", "metric"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(50))
    period: Mapped[str] = mapped_column(String(10))
    period_start: Mapped[date]
    period_end: Mapped[date]
    value: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def period_kind(self) -> str:
        if self.period.startswith("FY"):
            return "year"
        return {"Q": "quarter", "W": "week"}.get(self.period[5:6], "month")
