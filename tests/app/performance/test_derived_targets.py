"""Quarters without a target of their own are judged against their months' targets (issue 16),
through the compute job and GET /api/v1/performance, on SQLite and PostgreSQL.

as_of = 2026-11-18: 2026-Q4 (Oct 1..Dec 31, 92 days) has 31 + 18 = 49 days elapsed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.performance import compute

AS_OF = date(2026, 11, 18)
Q4_MONTHS = ["2026-10", "2026-11", "2026-12"]


@pytest.fixture
def org(factory, session, settings) -> dict[str, Any]:
    team = factory.team(name="North")
    ann = factory.rep(name="Ann", team_id=team.id, start_date=date(2024, 1, 1))
    # Bea joins on 2026-11-01: quotas for November and December only, ramped 20%, then 40%.
    bea = factory.rep(name="Bea", team_id=team.id, start_date=date(2026, 11, 1))
    for period, value in zip(Q4_MONTHS, (10_000.0, 20_000.0, 30_000.0), strict=True):
        factory.target(rep_id=ann.id, period=period, value=value)
        factory.target(team_id=team.id, period=period, value=2 * value)
        factory.target(rep_id=ann.id, metric="won_deals", period=period, value=1.0)
    factory.target(rep_id=ann.id, metric="won_deals", period="2026-Q4", value=5.0)
    for period in Q4_MONTHS[1:]:
        factory.target(rep_id=bea.id, period=period, value=5_000.0)
    factory.won(ann, 8_000.0, date(2026, 10, 5))
    factory.won(ann, 12_000.0, date(2026, 11, 10))
    factory.won(bea, 500.0, date(2026, 11, 12))
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.flush()
    return {"team": team.id, "ann": ann.id, "bea": bea.id}


def _rows(client, factory, **params: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/performance", params=params, headers=factory.key("analyst"))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_a_quarter_with_monthly_targets_only_is_judged_against_their_sum(client, factory, org):
    rows = _rows(client, factory, period="2026-Q4", metric="won_revenue")
    ann = _one(rows, rep_id=org["ann"])
    assert ann["target_source"] == "derived"
    assert ann["target_derived_from"] == Q4_MONTHS
    assert ann["target"] == ann["target_full"] == 60_000.0
    assert ann["actual"] == 20_000.0
    assert ann["gap"] == 40_000.0
    assert ann["pacing"] == "linear"
    assert ann["elapsed_fraction"] == pytest.approx(49 / 92)
    assert ann["expected_to_date"] == pytest.approx(60_000 * 49 / 92)
    assert ann["pace_gap"] == pytest.approx(20_000 - 60_000 * 49 / 92)
    assert ann["status"] == "at_risk"  # 20,000 < 0.9 x 31,957 expected by now
    assert ann["target_note"].startswith("derived: the sum of the targets of 2026-10")

    teams = _rows(client, factory, period="2026-Q4", metric="won_revenue", subject_type="team")
    team = _one(teams, team_id=org["team"])
    assert team["target_source"] == "derived" and team["target"] == 120_000.0


def test_a_derived_target_is_the_sum_of_the_months_ramped_targets(client, factory, org):
    """Bea: November 5,000 x 0.2 and December 5,000 x 0.4; October predates her start."""
    months = [
        _one(_rows(client, factory, period=p, metric="won_revenue"), rep_id=org["bea"])
        for p in Q4_MONTHS[1:]
    ]
    assert [m["target"] for m in months] == pytest.approx([1_000.0, 2_000.0])
    assert all(m["target_source"] == "set" and m["target_derived_from"] == [] for m in months)
    bea = _one(_rows(client, factory, period="2026-Q4", metric="won_revenue"), rep_id=org["bea"])
    assert bea["target_full"] == 10_000.0
    assert bea["target"] == pytest.approx(sum(m["target"] for m in months))
    assert bea["target_derived_from"] == Q4_MONTHS[1:]


def test_a_quarter_with_its_own_target_keeps_it(client, factory, org):
    ann = _one(_rows(client, factory, period="2026-Q4", metric="won_deals"), rep_id=org["ann"])
    assert ann["target_source"] == "set" and ann["target_derived_from"] == []
    assert ann["target"] == 5.0  # not 3, the sum of its months


def test_a_year_missing_monthly_targets_gets_none(client, factory, org):
    """Ann has no targets for January to September: her FY2026 is not judged against Q4's
    alone. Bea joined in November: the months before need none."""
    rows = _rows(client, factory, period="FY2026")
    assert [(r["rep_id"], r["target_derived_from"]) for r in rows] == [(org["bea"], Q4_MONTHS[1:])]


def test_an_incremental_compute_derives_the_same_targets(client, factory, org, session, settings):
    """Its scope starts in November, yet Q4's October target still counts."""
    before = _rows(client, factory, period="2026-Q4")
    snap = compute.run(session=session, settings=settings, as_of=AS_OF, full=False)
    assert snap.kind == "incremental" and "2026-10" not in snap.periods
    after = _rows(client, factory, period="2026-Q4")
    assert [(r["rep_id"], r["metric"], r["target"], r["target_source"]) for r in after] == [
        (r["rep_id"], r["metric"], r["target"], r["target_source"]) for r in before
    ]


def test_the_dashboard_quarter_view_shows_the_derived_rows(client, factory, org):
    token = factory.key("viewer")["Authorization"].removeprefix("Bearer ")
    login = client.post(
        "/dashboard/login",
        data={"api_key": token},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert login.status_code == 303
    page = client.get("/dashboard", params={"period": "2026-Q4", "metric": "won_revenue"})
    assert page.status_code == 200
    # The rep table's target cells: Ann's 60,000 and Bea's ramped 1,000 + 2,000.
    assert 'data-metric="target" data-value="60000.0">$60,000<' in page.text
    assert 'data-metric="target" data-value="3000.0">$3,000<' in page.text
