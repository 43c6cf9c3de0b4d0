"""The team tree, walked in one place: a team's subtree (the team and every team below it)
is what its figures, its alert rules' and webhooks' scope and its manager's access cover."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.teams.models import Team


def edges(*, session: Session) -> list[tuple[int, int | None]]:
    """Every (team, parent) pair: the whole tree in one read (teams are few)."""
    return [(t, p) for t, p in session.execute(select(Team.id, Team.parent_id)).all()]


def descendants(*, roots: Iterable[int], edges: Iterable[tuple[int, int | None]]) -> set[int]:
    """The roots and every team below them, from (team, parent) edges."""
    children: dict[int, list[int]] = {}
    for team_id, parent_id in edges:
        if parent_id is not None:
            children.setdefault(parent_id, []).append(team_id)
    out = set(roots)
    stack = list(out)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def subtree(*, session: Session, roots: Iterable[int]) -> set[int]:
    """The roots and every team below them, read from the database."""
    return descendants(roots=roots, edges=edges(session=session))


def lineage(team_id: int, parent: Mapping[int, int | None]) -> list[int]:
    """The team, its parent, its parent's parent ... up to the root (stopping at a loop, which
    the API refuses to make but a CRM import could hold)."""
    out: list[int] = []
    current: int | None = team_id
    while current is not None and current not in out:
        out.append(current)
        current = parent.get(current)
    return out


def ancestors(*, session: Session, team_id: int) -> set[int]:
    """The team and every team above it."""
    return set(lineage(team_id, dict(edges(session=session))))
