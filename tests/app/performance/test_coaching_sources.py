"""Coaching on a tenant that mixes a CRM with activities and an opportunities-only export:
the export's reps are judged on pipeline generation, never on activity, and the coaching
answer lists the drivers in order (issue 19)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.activities.models import Activity
from app.deals.models import Deal
from app.performance import compute
from app.performance.models import CoachingRow, ReportedDriverRow
from app.reps.models import RepIdentity

TODAY = date(2026, 6, 20)
MONTHS = [(2025, m) for m in range(3, 13)] + [(2026, m) for m in range(1, 6)]


@pytest.fixture
def mixed(session, factory):
    """One team: three reps from a CRM that syncs activities, four from a CSV export of
    opportunities only; of those, "Slow" creates half the opportunities of the others."""
    crm, csv = factory.source(kind="hubspot"), factory.source(kind="csv")
    team = factory.team(name="Mixed")
    reps = {}
    for name, source, opps in (
        ("Crm1", crm, 12),
        ("Crm2", crm, 12),
        ("Crm3", crm, 12),
        ("Csv1", csv, 12),
        ("Csv2", csv, 12),
        ("Csv3", csv, 12),
        ("Slow", csv, 6),
    ):
        rep = factory.rep(name=name, team_id=team.id, start_date=date(2024, 1, 1))
        session.add(RepIdentity(rep_id=rep.id, source_id=source.id, external_id=name))
        reps[name] = rep
        rows = []
        for year, month in MONTHS:
            for i in range(opps):
                won = i % 3 == 0  # a third of the deals won, all closed in the month
                day = date(year, month, 20)
                rows.append(
                    Deal(
                        source_id=source.id,
                        external_id=f"{name}-{year}-{month}-{i}",
                        rep_id=rep.id,
                        amount=10_000.0,
                        currency="USD",
                        status="won" if won else "lost",
                        stage="closed",
                        created_at=datetime(year, month, 2, tzinfo=UTC),
                        close_date=day,
                        closed_at=datetime(year, month, 20, tzinfo=UTC),
                    )
                )
                if source is crm:
                    rows.extend(
                        Activity(
                            source_id=crm.id,
                            external_id=f"{name}-{year}-{month}-{i}-{k}",
                            rep_id=rep.id,
                            type="call",
                            occurred_at=datetime(year, month, 3 + k, 10, tzinfo=UTC),
                        )
                        for k in range(10)
                    )
        session.add_all(rows)
    session.flush()
    return reps


def test_an_export_without_activities_is_coached_on_pipeline(
    client, factory, mixed, session, settings
):
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    session.flush()
    h = factory.key("admin")

    def coaching(name: str) -> dict:
        r = client.get(
            f"/api/v1/reps/{mixed[name].id}/coaching", params={"period": "2026-05"}, headers=h
        )
        assert r.status_code == 200, r.text
        return r.json()

    slow = coaching("Slow")
    assert slow["coaching_focus"] == "pipeline"
    assert slow["drivers"]["identity"] == "pipeline"
    assert slow["focus_window"] == "window"
    assert slow["focus_reason"].startswith(
        "opportunities created per month 6.0 vs team median 12.0"
    )
    first = slow["ranked"][0]
    assert first["driver"] == "pipeline" and first["judged"]
    assert first["vs_team"] == pytest.approx(0.5)
    assert first["window"] == "months 2025-06 to 2026-05"
    contributions = [e["contribution"] for e in slow["ranked"] if e["contribution"] is not None]
    assert contributions == sorted(contributions)
    activity = next(e for e in slow["ranked"] if e["driver"] == "activity")
    assert not activity["judged"] and "not tracked" in activity["reason"]
    for name in ("Csv1", "Csv2", "Csv3"):
        answer = coaching(name)
        assert answer["coaching_focus"] is None, answer["focus_reason"]
        assert answer["drivers"]["identity"] == "pipeline"
    crm = coaching("Crm1")
    assert crm["drivers"]["identity"] == "activity"
    # The CRM reps' activity bar is the other CRM reps' 120 a month, not the export's zero.
    assert crm["drivers"]["activity_team_median"] == pytest.approx(120)
    assert crm["coaching_focus"] is None


def test_the_pipeline_value_created_is_reported_from_its_own_rows(
    client, factory, mixed, session, settings
):
    """The pipeline value created (reported against the team, never judged) is stored in
    reported driver rows, not in the coaching row; a coaching row stored before those rows
    existed, with the figures in its drivers, reads the same."""
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    session.flush()
    h = factory.key("admin")
    slow = mixed["Slow"]

    def answer() -> dict:
        r = client.get(f"/api/v1/reps/{slow.id}/coaching", params={"period": "2026-05"}, headers=h)
        assert r.status_code == 200, r.text
        return r.json()

    body = answer()
    # Six deals of 10,000 a month against the other reps' twelve.
    assert body["drivers"]["pipeline_created_value"] == pytest.approx(60_000)
    assert body["drivers"]["pipeline_created_team_median"] == pytest.approx(120_000)
    assert body["drivers"]["pipeline_created_vs_team"] == pytest.approx(0.5)
    entry = next(e for e in body["ranked"] if e["driver"] == "pipeline_created")
    assert (entry["value"], entry["vs_team"], entry["judged"]) == (60_000, 0.5, False)
    row = session.scalar(
        select(CoachingRow).where(CoachingRow.rep_id == slow.id, CoachingRow.period == "2026-05")
    )
    assert not any(k.startswith("pipeline_created") for k in row.drivers)

    reported = session.scalars(
        select(ReportedDriverRow).where(
            ReportedDriverRow.rep_id == slow.id, ReportedDriverRow.period == "2026-05"
        )
    ).all()
    assert [r.driver for r in reported] == ["pipeline_created"]
    figures = ("value", "team_median", "trailing")
    legacy = {f"pipeline_created_{f}": getattr(reported[0], f) for f in figures}
    row.drivers = {**row.drivers, **legacy}
    session.delete(reported[0])
    session.flush()
    assert answer() == body
