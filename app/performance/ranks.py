"""Ranks and percentiles of reps' rows: properties of the snapshot, never of the query.

A rep's rank compares their attainment with every rep row of the snapshot for the same period
and metric (``rank_in_company``, ``percentile_in_company``), and with every rep row of their
team (``rank_in_team``). Filters (status, team, manager), pages, a key's scope or the team
endpoint's subtree choose which rows an answer shows; they never change the ranks shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.performance import versioning
from app.performance.models import PerformanceRow


class RankedRep(Protocol):
    """What :func:`apply` reads (properties: a schema's narrower types fit) and writes."""

    @property
    def rep_id(self) -> int | None: ...
    @property
    def subject_type(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def metric(self) -> str: ...

    rank_in_team: int | None
    rank_in_company: int | None
    percentile_in_company: float | None


class Rankable(RankedRep, Protocol):
    """What :func:`rank` reads and writes."""

    @property
    def team_id(self) -> int | None: ...
    @property
    def attainment(self) -> float | None: ...


@dataclass
class _Slot:
    """One rep row of the snapshot's population, as :func:`rank` reads and writes it."""

    rep_id: int
    team_id: int | None
    period: str
    metric: str
    attainment: float | None
    subject_type: str = "rep"
    rank_in_team: int | None = None
    rank_in_company: int | None = None
    percentile_in_company: float | None = None


def rank(items: Sequence[Rankable]) -> None:
    """Rank reps by attainment within team and company, per metric and period (1 = best), in
    place, over exactly ``items``.

    Same definitions as :func:`analytics.trends.ranks` (rank = 1 + rows strictly better,
    ties share the better rank; percentile = 100 x (n - rank) / (n - 1), 100 when n = 1), in
    plain Python: an answer ranks a few hundred rows, where pandas' fixed costs dominate.
    """
    groups: dict[tuple[Any, ...], list[tuple[float, Rankable]]] = {}
    for item in items:
        value = item.attainment
        if item.subject_type != "rep" or value is None or math.isnan(value):
            continue
        groups.setdefault(("company", item.period, item.metric), []).append((value, item))
        if item.team_id is not None:
            team_key = ("team", item.period, item.metric, item.team_id)
            groups.setdefault(team_key, []).append((value, item))
    for key, members in groups.items():
        first: dict[float, int] = {}
        for index, value in enumerate(sorted((v for v, _ in members), reverse=True)):
            first.setdefault(value, index + 1)
        n = len(members)
        for value, m in members:
            place = first[value]
            if key[0] == "team":
                m.rank_in_team = place
            else:
                m.rank_in_company = place
                m.percentile_in_company = round(
                    100.0 * (n - place) / (n - 1) if n > 1 else 100.0, 1
                )


def population(
    session: Session,
    version: int,
    *,
    periods: Iterable[str],
    metrics: Iterable[str],
    team_of: Mapping[int, int | None],
) -> list[_Slot]:
    """Every rep row of the snapshot in ``periods`` x ``metrics``, whatever a query filters.

    ``team_of`` maps a rep to their team (the team answers show); a rep it does not know
    keeps the row's own team.
    """
    rows = session.execute(
        select(
            PerformanceRow.rep_id,
            PerformanceRow.team_id,
            PerformanceRow.period,
            PerformanceRow.metric,
            PerformanceRow.attainment,
        ).where(
            versioning.visible(PerformanceRow, version),
            PerformanceRow.subject_type == "rep",
            PerformanceRow.period.in_(set(periods)),
            PerformanceRow.metric.in_(set(metrics)),
        )
    ).all()
    return [
        _Slot(rep_id, team_of.get(rep_id, team_id), period, metric, attainment)
        for rep_id, team_id, period, metric, attainment in rows
        if rep_id is not None
    ]


def apply(
    session: Session,
    version: int,
    items: Sequence[RankedRep],
    *,
    team_of: Mapping[int, int | None],
) -> None:
    """Set each rep item's ranks to those of its row in the whole snapshot population."""
    reps = [i for i in items if i.subject_type == "rep" and i.rep_id is not None]
    if not reps:
        return
    slots = population(
        session,
        version,
        periods={i.period for i in reps},
        metrics={i.metric for i in reps},
        team_of=team_of,
    )
    rank(slots)
    by_key = {(s.rep_id, s.period, s.metric): s for s in slots}
    for item in reps:
        slot = by_key.get((item.rep_id or 0, item.period, item.metric))
        item.rank_in_team = slot.rank_in_team if slot else None
        item.rank_in_company = slot.rank_in_company if slot else None
        item.percentile_in_company = slot.percentile_in_company if slot else None
