from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import Base, utcnow

if TYPE_CHECKING:
    from app.reps.models import Rep


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # use_alter breaks the teams <-> reps cycle (a team has a manager, a rep has a team).
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("reps.id", ondelete="SET NULL", use_alter=True), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # post_update: teams and reps point at each other, so the manager is set in a second step.
    manager: Mapped[Rep | None] = relationship(
        foreign_keys=[manager_id], lazy="joined", post_update=True
    )

    @property
    def manager_name(self) -> str | None:
        return self.manager.name if self.manager else None
