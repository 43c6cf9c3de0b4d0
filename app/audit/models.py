from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow


class AuditEntry(Base):
    """One change to a target, source, alert rule, webhook or API key: who, when, what,
    the values before and after (secrets redacted). Written in the changing transaction."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "key:12 (admin)", "cli", "scheduler"
    actor_key_id: Mapped[int | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(10))  # create | update | delete
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int | None]
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()
