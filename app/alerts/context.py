"""What alert rules read: the snapshot's target rows of the periods they look at, names,
coaching, and the formatting their summaries share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.periods import Period, period_of, shift
from app.core.config import Settings
from app.performance import versioning
from app.performance.membership import teams_of_movers
from app.performance.models import CoachingRow, PerformanceRow
from app.reps.models import Rep
from app.teams.models import Team

ROW_FIGURES = (
    "actual",
    "target",
    "target_full",
    "gap",
    "attainment",
    "elapsed_fraction",
    "expected_to_date",
    "pace_gap",
    "projected",
    "projected_with_pipeline",
    "coverage",
    "coverage_needed",
    "consecutive_misses",
)


@dataclass
class Context:
    session: Session
    settings: Settings
    version: int
    today: date
    reps: dict[int, Rep]
    teams: dict[int, Team]
    _rows: dict[tuple[str, ...], pd.DataFrame] = field(default_factory=dict)

    def month(self) -> str:
        return period_of(self.today, "month", self.settings.calendar).label

    def periods(self, kinds: Iterable[str]) -> list[Period]:
        cal = self.settings.calendar
        out = []
        for kind in kinds:
            current = period_of(self.today, kind, cal)
            out += [
                shift(current, -i, cal) for i in range(self.settings.alert_lookback_periods + 1)
            ]
        return out

    def rows(self, labels: list[str]) -> pd.DataFrame:
        """The snapshot's target rows of these periods, with rep and team names."""
        key = tuple(sorted(labels))
        if key not in self._rows:
            rows = self.session.scalars(
                select(PerformanceRow).where(
                    versioning.visible(PerformanceRow, self.version),
                    PerformanceRow.period.in_(labels),
                )
            ).all()
            # A rep who moved counts for the team they were on in the row's period.
            current = {i: (rep.team_id, rep.role) for i, rep in self.reps.items()}
            cal = self.settings.calendar
            moved = {p: teams_of_movers(self.session, current, p, cal) for p in labels}
            records = [
                {
                    "row_id": r.id,
                    "subject_type": r.subject_type,
                    "rep_id": r.rep_id,
                    "team_id": r.team_id
                    if r.subject_type == "team"
                    else _team_of(moved[r.period], r.rep_id, self.rep_team(r.rep_id)),
                    "metric": r.metric,
                    "period": r.period,
                    "period_end": r.period_end,
                    "status": r.status,
                    **{f: getattr(r, f) for f in ROW_FIGURES},
                }
                for r in rows
            ]
            self._rows[key] = pd.DataFrame(
                records,
                columns=[
                    "row_id",
                    "subject_type",
                    "rep_id",
                    "team_id",
                    "metric",
                    "period",
                    "period_end",
                    "status",
                    *ROW_FIGURES,
                ],
            )
        return self._rows[key]

    def rep_team(self, rep_id: int | None) -> int | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep.team_id if rep else None

    def rep_name(self, rep_id: int | None) -> str | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep.name if rep else None

    def team_name(self, team_id: int | None) -> str | None:
        team = self.teams.get(team_id) if team_id is not None else None
        return team.name if team else None

    def coaching(self, rep_id: int, period: str) -> tuple[str | None, str | None]:
        row = self.session.scalars(
            select(CoachingRow).where(
                versioning.visible(CoachingRow, self.version),
                CoachingRow.rep_id == rep_id,
                CoachingRow.period == period,
            )
        ).first()
        return (row.coaching_focus, row.focus_reason) if row else (None, None)


def _team_of(moved: dict[int, int | None], rep_id: int | None, today: int | None) -> int | None:
    return moved[rep_id] if rep_id is not None and rep_id in moved else today


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def money(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):,.0f}"


def pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.0%}"


def clean(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = versioning.clean(record)
    for k, v in out.items():
        if isinstance(v, date):
            out[k] = v.isoformat()
    return out
