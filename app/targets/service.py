"""Targets: upserts keyed on (rep or team, metric, period), bulk loads, and suggestions."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from analytics.metrics import ADDITIVE_METRICS, METRICS, additive_actuals
from analytics.periods import (
    FiscalCalendar,
    Period,
    PeriodError,
    parse_period,
    same_period_last_year,
)
from analytics.periods import shift as shift_period
from app.activities.models import Activity
from app.core.config import Settings
from app.core.exceptions import InvalidInputError, NotFoundError
from app.core.periods import parse
from app.deals.models import Deal
from app.performance import frames
from app.reps.models import Rep
from app.targets.models import Target
from app.targets.schemas import Suggestion, SuggestRequest, TargetCreate
from app.teams.models import Team

# How an additive metric dates its records (the rest count activities by occurred_at).
CLOSING_METRICS = frozenset({"won_revenue", "won_deals"})
CREATION_METRICS = frozenset({"pipeline_created", "opportunities"})
YEAR_BACK = "a year back"


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


def suggest(*, session: Session, request: SuggestRequest, settings: Settings) -> list[Suggestion]:
    """Propose targets from each active rep's history; nothing is written.

    ``last_year_growth``: actual in the same period last year × (1 + growth_pct / 100).
    ``trailing_average``: mean actual over the previous ``trailing_periods`` periods that are
    in the rep's history × (1 + growth_pct / 100).

    A period is in a rep's history when both the rep (their ``start_date``, else their first
    deal or activity) and the metric's data (its first close, creation or activity) had
    started by its end. A row without the history its method needs gets ``value`` null and
    its ``reason``, unless ``fallback`` asks for the trailing average or the team's median;
    a 0 from history says so in ``reason``. Never a silent 0.
    """
    cal = settings.calendar
    _check_suggest(request)
    period = parse(request.period, cal)
    last_year = [same_period_last_year(period, cal)]
    trailing = [shift_period(period, -i, cal) for i in range(1, request.trailing_periods + 1)]
    needed = last_year if request.method == "last_year_growth" else trailing
    if request.fallback == "trailing_average":
        needed = [*last_year, *trailing]
    stmt = select(Rep).where(Rep.role == "rep", Rep.is_active.is_(True)).order_by(Rep.id)
    if request.team_id is not None:
        stmt = stmt.where(Rep.team_id == request.team_id)
    reps = list(session.scalars(stmt))
    table = _history_actuals(session, settings, request.metric, needed, kind=period.kind)
    data_start, firsts = _history_starts(session, request.metric)
    factor = 1 + request.growth_pct / 100
    trailing_what = f"in the last {len(trailing)} periods"
    out: list[Suggestion] = []
    for rep in reps:
        history = _History(rep, data_start, firsts.get(rep.id), table)
        if request.method == "last_year_growth":
            value, basis, reason = history.propose(last_year, factor, what=YEAR_BACK)
        else:
            value, basis, reason = history.propose(trailing, factor, what=trailing_what)
        method: str = request.method
        if value is None and request.fallback == "trailing_average":
            average, average_basis, why = history.propose(trailing, factor, what=trailing_what)
            if average is None:
                reason = f"{reason}; {why}"
            else:
                value, basis, method = average, average_basis, f"{method}:trailing_average"
                reason = "; ".join(filter(None, (f"{reason}: the trailing average is used", why)))
        out.append(
            Suggestion(
                rep_id=rep.id,
                metric=request.metric,
                period=period.label,
                value=value,
                rep_name=rep.name,
                method=method,
                basis=basis,
                history_start=history.start,
                reason=reason,
            )
        )
    if request.fallback == "team_median":
        _team_median(out, {r.id: r.team_id for r in reps}, method=request.method)
    return out


def _check_suggest(request: SuggestRequest) -> None:
    if request.metric not in ADDITIVE_METRICS:
        raise InvalidInputError(
            f"suggestions work for additive metrics ({', '.join(ADDITIVE_METRICS)})",
            details=[{"field": "metric", "message": f"{request.metric!r} is not additive"}],
        )
    if request.method == "trailing_average" and request.fallback == "trailing_average":
        raise InvalidInputError(
            "fallback trailing_average is for method last_year_growth",
            details=[{"field": "fallback", "message": "use none or team_median with this method"}],
        )


def _history_actuals(
    session: Session, settings: Settings, metric: str, periods: Sequence[Period], *, kind: str
) -> pd.DataFrame:
    """Each rep's actual of ``metric`` in each of ``periods`` (rep x label; NaN: none)."""
    conn = session.connection()
    since = min(p.start for p in periods)
    until = max(p.end for p in periods)
    actuals = additive_actuals(
        frames.deals_frame(conn, since=since, until=until),
        frames.activities_frame(conn, since=since, until=until),
        kind=kind,
        cal=settings.calendar,
        rates=settings.currency_rates,
    )
    actuals = actuals[actuals["metric"] == metric]
    by_rep = actuals.pivot_table(index="rep_id", columns="period", values="value", aggfunc="sum")
    return by_rep.reindex(columns=list(dict.fromkeys(p.label for p in periods)))


def _history_starts(session: Session, metric: str) -> tuple[date | None, dict[int, date]]:
    """The day the data of ``metric`` starts, and each rep's first deal or activity.

    The data starts at the first record dated the way the metric places records in periods
    (a won or lost deal's close date, a deal's creation, an activity): a deal created long
    before the first recorded closing does not make closings a year back known.
    """
    live_deal = (Deal.rep_id.is_not(None), Deal.is_deleted.is_(False))
    live_activity = (Activity.rep_id.is_not(None), Activity.is_deleted.is_(False))
    if metric in CLOSING_METRICS:
        data = select(func.min(Deal.close_date)).where(*live_deal, Deal.status != "open")
    elif metric in CREATION_METRICS:
        data = select(func.min(Deal.created_at)).where(*live_deal)
    else:
        data = select(func.min(Activity.occurred_at)).where(*live_activity)
    firsts: dict[int, date] = {}
    deals = select(Deal.rep_id, func.min(Deal.created_at), func.min(Deal.close_date))
    activities = select(Activity.rep_id, func.min(Activity.occurred_at))
    for rep_id, *days in [
        *session.execute(deals.where(*live_deal).group_by(Deal.rep_id)),
        *session.execute(activities.where(*live_activity).group_by(Activity.rep_id)),
    ]:
        for day in filter(None, map(_day, days)):
            firsts[rep_id] = min(firsts.get(rep_id, day), day)
    return _day(session.scalar(data)), firsts


def _day(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


class _History:
    """What a rep's history holds: which periods it covers and what they booked in them."""

    def __init__(
        self, rep: Rep, data_start: date | None, first: date | None, table: pd.DataFrame
    ) -> None:
        self.rep = rep
        self.data_start = data_start
        self.rep_start = rep.start_date or first
        self.start = max(self.rep_start, data_start) if self.rep_start and data_start else None
        self.row = table.loc[rep.id] if rep.id in table.index else None

    def covers(self, p: Period) -> bool:
        return self.start is not None and self.start <= p.end

    def actual(self, p: Period) -> float | None:
        """Booked in ``p``: 0 when it is in the history without a record, None outside it."""
        if not self.covers(p):
            return None
        value = self.row.get(p.label) if self.row is not None else None
        return 0.0 if value is None or pd.isna(value) else float(value)

    def propose(
        self, periods: Sequence[Period], factor: float, *, what: str
    ) -> tuple[float | None, dict[str, float | None], str | None]:
        """(value, basis, reason): the mean actual over the covered ``periods`` × factor;
        ``what`` names the periods in a reason ("a year back")."""
        basis = {p.label: self.actual(p) for p in periods}
        known = [v for v in basis.values() if v is not None]
        if not known:
            return None, basis, self._missing(periods, what)
        value = round(sum(known) / len(known) * factor, 2)
        notes = []
        if len(known) < len(periods):
            notes.append(
                f"averaged over the {len(known)} of {len(periods)} periods in the rep's "
                f"history (it starts on {self.start})"
            )
        joined = self.rep.start_date
        notes += [
            f"the rep joined on {joined}, during {p.label}: its actual covers only part of it"
            for p in periods
            if joined is not None and p.start < joined <= p.end and self.covers(p)
        ]
        if not any(known):
            notes.append(f"booked 0 in {', '.join(basis)}: a genuine 0 from the rep's history")
        return value, basis, "; ".join(notes) or None

    def _missing(self, periods: Sequence[Period], what: str) -> str:
        labels = ", ".join(p.label for p in periods)
        if self.data_start is None:
            return f"no history {what}: the data holds no record of this metric yet"
        if self.rep_start is None:
            return f"no history {what}: the rep has no start date and no deals or activities"
        if self.data_start > max(p.end for p in periods):
            return f"no history {what}: the data starts on {self.data_start}, after {labels}"
        return f"no history {what}: the rep started on {self.rep_start}, after {labels}"


def _team_median(out: list[Suggestion], team_of: Mapping[int, int | None], *, method: str) -> None:
    """Rows without a value get the median of their team's values computed as asked."""
    asked = pd.Series(
        {s.rep_id: s.value for s in out if s.value is not None and s.method == method},
        dtype="float64",
    )
    medians = asked.groupby(asked.index.map(lambda r: team_of.get(r) or 0)).median()
    for s in out:
        if s.value is not None:
            continue
        median = medians.get(team_of.get(s.rep_id) or 0)
        if median is None or pd.isna(median):
            s.reason = f"{s.reason}; no teammate has the history for a team median"
            continue
        s.value, s.method = round(float(median), 2), f"{method}:team_median"
        s.reason = f"{s.reason}: the team's median suggestion is used"
