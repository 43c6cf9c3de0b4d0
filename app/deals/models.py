from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow

DEAL_STATUSES = ("open", "won", "lost")


class Deal(Base):
    """A CRM deal/opportunity. ``created_at`` and ``closed_at`` are the CRM's own times."""

    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        Index("ix_deals_rep_id_close_date", "rep_id", "close_date"),
        Index("ix_deals_rep_id_created_at", "rep_id", "created_at"),
        Index("ix_deals_status_close_date", "status", "close_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", ondelete="SET NULL"))
    owner_external_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(500))
    account: Mapped[str | None] = mapped_column(String(500))
    # Floats out of the database keep the analytics vectorised (no Decimal objects).
    amount: Mapped[float | None] = mapped_column(Numeric(18, 2, asdecimal=False))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    stage: Mapped[str | None] = mapped_column(String(200))
    pipeline: Mapped[str | None] = mapped_column(String(200))
    probability: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime | None]
    close_date: Mapped[date | None]
    closed_at: Mapped[datetime | None]
    source_modified_at: Mapped[datetime | None]
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DealStageChange(Base):
    """A deal's stage history, where the source provides one (re-opened deals show up here)."""

    __tablename__ = "deal_stage_changes"
    __table_args__ = (UniqueConstraint("deal_id", "entered_at", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(200))
    entered_at: Mapped[datetime]
