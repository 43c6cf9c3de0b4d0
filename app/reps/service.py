from __future__ import annotations

from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core.exceptions import ConflictError, InvalidInputError, NotFoundError
from app.reps import memberships
from app.reps.models import Rep, RepIdentity
from app.reps.schemas import RepUpdate
from app.teams import service as teams_service
from app.teams import tree
from app.teams.models import Team


def get(*, session: Session, rep_id: int) -> Rep:
    rep = session.get(Rep, rep_id)
    if rep is None:
        raise NotFoundError(f"rep {rep_id} not found")
    return rep


def get_by_email(*, session: Session, email: str) -> Rep | None:
    return session.scalar(select(Rep).where(Rep.email == email.strip().lower()))


def query(
    *,
    team_id: int | None = None,
    manager_id: int | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    visible_ids: frozenset[int] | None = None,
) -> Select[Rep]:
    stmt = select(Rep).order_by(Rep.id)
    if team_id is not None:
        stmt = stmt.where(Rep.team_id == team_id)
    if manager_id is not None:
        stmt = stmt.where(Rep.manager_id == manager_id)
    if role is not None:
        stmt = stmt.where(Rep.role == role)
    if is_active is not None:
        stmt = stmt.where(Rep.is_active == is_active)
    if visible_ids is not None:
        stmt = stmt.where(Rep.id.in_(visible_ids))
    return stmt


def update(*, session: Session, rep: Rep, rep_in: RepUpdate, today: date) -> Rep:
    """Apply the fields set in ``rep_in``; a team move takes effect on ``effective_date``
    (``today`` when not given), and the periods before it keep the rep's old team."""
    data = rep_in.model_dump(exclude_unset=True)
    effective = data.pop("effective_date", None) or today
    if data.get("team_id") is not None:
        teams_service.get(session=session, team_id=data["team_id"])
    if "team_id" in data and data["team_id"] != rep.team_id:
        memberships.move(
            session=session, rep=rep, team_id=data.pop("team_id"), effective=effective, today=today
        )
    if data.get("manager_id") is not None:
        if data["manager_id"] == rep.id:
            raise InvalidInputError(
                "a rep cannot manage themselves",
                details=[{"field": "manager_id", "message": "equals the rep's own id"}],
            )
        manager = get(session=session, rep_id=data["manager_id"])
        if rep.id in _manager_chain(session=session, rep=manager):
            raise InvalidInputError(
                "manager cycle",
                details=[{"field": "manager_id", "message": "would make a management cycle"}],
            )
    if data.get("email"):
        data["email"] = data["email"].strip().lower()
        same = select(Rep.id).where(Rep.email == data["email"], Rep.id != rep.id)
        if session.scalar(same) is not None:
            raise ConflictError(f"another rep has the email {data['email']!r}")
    if "is_active" in data and data["is_active"] is None:
        raise InvalidInputError(
            "is_active may not be null",
            details=[{"field": "is_active", "message": "true or false"}],
        )
    for field, value in data.items():
        setattr(rep, field, value)
    session.flush()
    session.expire(rep, ["team", "manager"])  # reload the relationships behind the new ids
    return rep


def _manager_chain(*, session: Session, rep: Rep) -> set[int]:
    seen: set[int] = set()
    current: Rep | None = rep
    while current is not None and current.id not in seen:
        seen.add(current.id)
        current = session.get(Rep, current.manager_id) if current.manager_id else None
    return seen


def scope_of_manager(*, session: Session, manager_id: int) -> tuple[set[int], set[int]]:
    """The reps and teams a manager may read: their teams (and sub-teams) and their reports.

    Team and rep tables are small (hundreds of rows), so the trees are walked in memory.
    """
    teams = session.execute(select(Team.id, Team.parent_id, Team.manager_id)).all()
    team_ids = {t.id for t in teams if t.manager_id == manager_id}
    team_ids = tree.descendants(roots=team_ids, edges=[(t.id, t.parent_id) for t in teams])
    reps = session.execute(select(Rep.id, Rep.manager_id, Rep.team_id)).all()
    by_manager: dict[int, list[int]] = {}
    for r in reps:
        if r.manager_id is not None:
            by_manager.setdefault(r.manager_id, []).append(r.id)
    reports = {manager_id}
    stack = [manager_id]
    while stack:
        for child in by_manager.get(stack.pop(), []):
            if child not in reports:
                reports.add(child)
                stack.append(child)
    rep_ids = reports | {r.id for r in reps if r.team_id in team_ids}
    return rep_ids, team_ids


def resolve_identity(
    *,
    session: Session,
    source_id: int,
    external_id: str,
    name: str,
    email: str | None = None,
    role: str = "rep",
    start_date: date | None = None,
    is_active: bool = True,
) -> Rep:
    """The rep a source's owner id stands for, created on first sight.

    A person known to two CRMs under one email is one rep: a new identity joins the rep that
    already has that email.
    """
    email = email.strip().lower() if email else None
    identity = session.scalar(
        select(RepIdentity).where(
            RepIdentity.source_id == source_id, RepIdentity.external_id == external_id
        )
    )
    if identity is not None:
        rep = identity.rep
        if email and identity.email != email:
            identity.email = email
        if email and rep.email is None and get_by_email(session=session, email=email) is None:
            rep.email = email
        return rep
    rep_or_none = get_by_email(session=session, email=email) if email else None
    if rep_or_none is None:
        rep_or_none = Rep(
            name=name, email=email, role=role, start_date=start_date, is_active=is_active
        )
        session.add(rep_or_none)
        session.flush()
    rep_or_none.identities.append(
        RepIdentity(source_id=source_id, external_id=external_id, email=email)
    )
    session.flush()
    return rep_or_none


def identity_map(*, session: Session, source_id: int) -> dict[str, int]:
    """external owner id -> rep id, for mapping a whole page of records at once."""
    rows = session.execute(
        select(RepIdentity.external_id, RepIdentity.rep_id).where(
            RepIdentity.source_id == source_id
        )
    )
    return {external_id: rep_id for external_id, rep_id in rows}
