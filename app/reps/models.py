from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import Base, utcnow

if TYPE_CHECKING:
    from app.teams.models import Team

REP_ROLES = ("rep", "manager")


class Rep(Base):
    """One person, whatever number of CRMs know them (see ``RepIdentity``)."""

    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased; the key that merges one person's identities across CRMs.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("reps.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[str] = mapped_column(String(20), default="rep")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    start_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    team: Mapped[Team | None] = relationship(foreign_keys=[team_id], lazy="joined")
    manager: Mapped[Rep | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)
    identities: Mapped[list[RepIdentity]] = relationship(
        back_populates="rep", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def team_name(self) -> str | None:
        return self.team.name if self.team else None

    @property
    def manager_name(self) -> str | None:
        return self.manager.name if self.manager else None


class TeamMembership(Base):
    """The days a rep was on a team: ``[valid_from, valid_to)``, open-ended when ``valid_to``
    is null. A move closes one span and opens the next on its effective date
    (:mod:`app.reps.memberships`); team figures count each rep for the days they were on the
    team. A rep's first span also covers whatever they did before it (records dated before
    the rep joined their first team count for that team)."""

    __tablename__ = "team_memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RepIdentity(Base):
    """How one source names a rep (a HubSpot owner id, a Salesforce user id, a CSV name)."""

    __tablename__ = "rep_identities"
    __table_args__ = (UniqueConstraint("source_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rep: Mapped[Rep] = relationship(back_populates="identities")
