from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow

ACTIVITY_TYPES = ("call", "email", "meeting", "task")


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        Index("ix_activities_rep_id_occurred_at", "rep_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", ondelete="SET NULL"))
    owner_external_id: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime]
    deal_external_id: Mapped[str | None] = mapped_column(String(200))
    source_modified_at: Mapped[datetime | None]
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
