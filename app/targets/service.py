"""Targets: upserts keyed on (rep or team, metric, period) and bulk loads (suggestions from
history: :mod:`app.performance.suggest`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from analytics.metrics import METRICS
from analytics.periods import (
    FiscalCalendar,
    PeriodError,
    parse_period,
)
from app.core.exceptions import InvalidInputError, NotFoundError
from app.reps.models import Rep
from app.targets.models import Target
from app.targets.schemas import TargetCreate
from app.teams.models import Team


def get(*, session: Session, target_id: int) -> Target:
    target = session.get(Target, target_id)
    if target is None:
        raise NotFoundError(f"target {target_id} not found")
    return target


def query(
    *,
    rep_id: int | None = None,
    team_id: int | None = None,
    metric: str | None = None,
    period: str | None = None,
    visible_rep_ids: frozenset[int] | None = None,
    visible_team_ids: frozenset[int] | None = None,
) -> Select[Target]:
    stmt = select(Target)
    if rep_id is not None:
        stmt = stmt.where(Target.rep_id == rep_id)
    if team_id is not None:
        stmt = stmt.where(Target.team_id == team_id)
    if metric is not None:
        stmt = stmt.where(Target.metric == metric)
    if period is not None:
        stmt = stmt.where(Target.period == period)
    if visible_rep_ids is not None:
        stmt = stmt.where(
            Target.rep_id.in_(visible_rep_ids) | Target.team_id.in_(visible_team_ids or ())
        )
    return stmt


@dataclass
class _Row:
    rep_id: int | None
    team_id: int | None
    metric: str
    period: str
    value: float
    period_start: Any
    period_end: Any


def validate_rows(
    *, session: Session, rows: Sequence[Mapping[str, Any]], cal: FiscalCalendar
) -> list[_Row]:
    """Check every row; raise one InvalidInputError listing every bad row, or return them all.

    A row names its subject by ``rep_id``, ``rep_email``, ``team_id`` or ``team`` (name).
    Rows are numbered from 1 (for CSV, the first data row after the header is row 1).
    """
    reps_by_id = {r.id: r.id for r in session.scalars(select(Rep))}
    reps_by_email = {
        e.lower(): i for i, e in session.execute(select(Rep.id, Rep.email)) if e is not None
    }
    teams_by_id = {t: t for t in session.scalars(select(Team.id))}
    teams_by_name = {n.lower(): i for i, n in session.execute(select(Team.id, Team.name))}
    errors: list[dict[str, Any]] = []
    out: list[_Row] = []
    seen: dict[tuple[int | None, int | None, str, str], int] = {}

    def bad(n: int, field: str, message: str) -> None:
        errors.append({"row": n, "field": field, "message": message})

    for n, raw in enumerate(rows, start=1):
        row = {
            k.strip().lower(): (v.strip() if isinstance(v, str) else v)
            for k, v in raw.items()
            if k is not None
        }
        rep_id: int | None = None
        team_id: int | None = None
        ok = True
        rep_ref = row.get("rep_id") or row.get("rep_email") or row.get("rep")
        team_ref = row.get("team_id") or row.get("team")
        if rep_ref not in (None, "") and team_ref not in (None, ""):
            bad(n, "rep", "give a rep or a team, not both")
            ok = False
        elif rep_ref not in (None, ""):
            rep_id = _lookup(rep_ref, reps_by_id, reps_by_email)
            if rep_id is None:
                bad(n, "rep", f"unknown rep {rep_ref!r}")
                ok = False
        elif team_ref not in (None, ""):
            team_id = _lookup(team_ref, teams_by_id, teams_by_name)
            if team_id is None:
                bad(n, "team", f"unknown team {team_ref!r}")
                ok = False
        else:
            bad(n, "rep", "missing rep_id, rep_email, team_id or team")
            ok = False
        metric = str(row.get("metric") or "")
        if metric not in METRICS:
            bad(n, "metric", f"unknown metric {metric!r} (one of {', '.join(METRICS)})")
            ok = False
        try:
            period = parse_period(str(row.get("period") or ""), cal)
        except PeriodError as exc:
            bad(n, "period", str(exc))
            ok = False
        value = _number(row.get("value"))
        if value is None:
            bad(n, "value", f"not a number: {row.get('value')!r}")
            ok = False
        elif value < 0:
            bad(n, "value", f"negative value {value:g}")
            ok = False
        if not ok:
            continue
        key = (rep_id, team_id, metric, period.label)
        if key in seen:
            bad(n, "period", f"duplicates row {seen[key]} (same subject, metric and period)")
            continue
        seen[key] = n
        assert value is not None
        out.append(_Row(rep_id, team_id, metric, period.label, value, period.start, period.end))
    if errors:
        raise InvalidInputError(
            f"{len({e['row'] for e in errors})} bad row(s); nothing was written", details=errors
        )
    return out


def _lookup(ref: Any, by_id: Mapping[int, int], by_name: Mapping[str, int]) -> int | None:
    text = str(ref).strip()
    if text.isdigit():
        return by_id.get(int(text))
    return by_name.get(text.lower())


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw) if pd.notna(raw) and abs(raw) != float("inf") else None
    try:
        value = float(str(raw).replace(",", "").strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def upsert_many(*, session: Session, rows: Iterable[_Row]) -> tuple[list[Target], int, int, int]:
    """Insert or update each row; idempotent: re-sending the same rows changes nothing."""
    rows = list(rows)
    created = updated = unchanged = 0
    targets: list[Target] = []
    # One query for every target the rows could touch, instead of one per row.
    existing = {
        (t.rep_id, t.team_id, t.metric, t.period): t
        for t in session.scalars(
            select(Target).where(
                Target.period.in_({r.period for r in rows}),
                Target.metric.in_({r.metric for r in rows}),
            )
        )
    }
    for row in rows:
        target = existing.get((row.rep_id, row.team_id, row.metric, row.period))
        if target is None:
            target = Target(
                rep_id=row.rep_id,
                team_id=row.team_id,
                metric=row.metric,
                period=row.period,
                period_start=row.period_start,
                period_end=row.period_end,
                value=row.value,
            )
            session.add(target)
            created += 1
        elif target.value != row.value:
            target.value = row.value
            updated += 1
        else:
            unchanged += 1
        targets.append(target)
    session.flush()
    return targets, created, updated, unchanged


def upsert(
    *, session: Session, target_in: TargetCreate, cal: FiscalCalendar
) -> tuple[Target, bool]:
    rows = validate_rows(session=session, rows=[target_in.model_dump()], cal=cal)
    targets, created, _, _ = upsert_many(session=session, rows=rows)
    return targets[0], created == 1


def rows_from_csv(*, content: bytes, max_rows: int) -> list[dict[str, Any]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            "the file is not UTF-8 text", details=[{"field": "file", "message": str(exc)}]
        ) from exc
    # newline="": the csv module reads \r, \n and \r\n line ends itself (as its docs ask).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _read_rows(reader, max_rows=max_rows)
    except csv.Error as exc:  # a malformed file is bad input, not a server error
        raise InvalidInputError(
            "the file is not valid CSV",
            details=[{"field": "file", "message": f"line {reader.line_num}: {exc}"}],
        ) from exc


def _read_rows(reader: csv.DictReader[str], *, max_rows: int) -> list[dict[str, Any]]:
    header = {h.strip().lower() for h in (reader.fieldnames or [])}
    missing = {"metric", "period", "value"} - header
    if missing or not header & {"rep_id", "rep_email", "rep", "team_id", "team"}:
        need = sorted(missing) or ["rep_id, rep_email, team_id or team"]
        raise InvalidInputError(
            "the CSV header lacks required columns",
            details=[{"field": "file", "message": f"missing column(s): {', '.join(need)}"}],
        )
    rows: list[dict[str, Any]] = []
    for row in reader:
        rows.append(row)
        if len(rows) > max_rows:
            raise InvalidInputError(
                f"more than {max_rows} rows",
                details=[{"field": "file", "message": f"at most {max_rows} rows per upload"}],
            )
    return rows
