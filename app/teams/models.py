from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, column, select, table
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.core.base import Base, utcnow

# Teams sit below reps in the layering (a rep belongs to a team; app.reps imports app.teams),
# so what a team needs of the reps table (its manager's name and id) is read through this
# lightweight table rather than the Rep model.
REPS = table("reps", column("id"), column("name"))


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

    # The manager's name, read with the team (teams are few; one correlated subquery).
    manager_name: Mapped[str | None] = column_property(
        select(REPS.c.name).where(REPS.c.id == manager_id).correlate_except(REPS).scalar_subquery()
    )
