"""Answers read straight from the CRM records rather than from a snapshot: the wins to
recognise in a period, and each rep's CRM hygiene today."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy.orm import Session

from analytics import hygiene
from analytics import wins as wins_analytics
from app.auth.service import Principal
from app.core.config import Settings
from app.core.periods import parse
from app.performance import frames, versioning
from app.performance.reads import rep_names
from app.performance.schemas import HygieneRead, HygieneRow, WinRead
from app.performance.service import default_period


def list_wins(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    period: str | None,
    min_amount: float | None,
    top_percentile: float,
) -> list[WinRead]:
    """Deals to recognise in a period: above ``min_amount`` or in the period's top percentile."""
    label = parse(period, settings.calendar).label if period else default_period(settings)
    p = parse(label, settings.calendar)
    deals = frames.deals_frame(session.connection(), since=p.start, until=p.end, status="won")
    found = wins_analytics.wins(
        deals,
        rates=settings.currency_rates,
        kind=p.kind,
        cal=settings.calendar,
        min_amount=min_amount,
        top_percentile=top_percentile,
        periods=[label],
    )
    reps, _ = rep_names(session)
    out = []
    for r in found.to_dict("records"):
        rep_id = int(r["rep_id"])
        if not principal.can_see_rep(rep_id):
            continue
        win = {
            **r,
            "rep_name": reps[rep_id].name if rep_id in reps else None,
            "close_date": str(pd.Timestamp(r["close_date"]).date()),
        }
        out.append(WinRead.model_validate(versioning.clean(win)))
    return out


def hygiene_report(
    *, session: Session, settings: Settings, principal: Principal, team_id: int | None
) -> HygieneRead:
    """CRM hygiene per rep today: past-due and stale open deals, activities per week."""
    as_of = settings.today()
    conn = session.connection()
    deals = frames.deals_frame(conn, status="open")
    acts = frames.activities_frame(conn, since=as_of - timedelta(days=45), until=as_of)
    reps, teams = rep_names(session)
    people = pd.DataFrame(
        {"rep_id": [r.id for r in reps.values() if r.role == "rep" and r.is_active]}
    )
    table = hygiene.hygiene(
        deals, acts, as_of=as_of, rates=settings.currency_rates, tz=settings.timezone, reps=people
    )
    items = []
    for r in table.to_dict("records"):
        rep = reps[int(r["rep_id"])]
        if not principal.can_see_rep(rep.id) or (team_id is not None and rep.team_id != team_id):
            continue
        row = {
            **r,
            "rep_name": rep.name,
            "team_id": rep.team_id,
            "team_name": teams.get(rep.team_id) if rep.team_id else None,
        }
        items.append(HygieneRow.model_validate(versioning.clean(row)))
    return HygieneRead(as_of=as_of, items=items)
