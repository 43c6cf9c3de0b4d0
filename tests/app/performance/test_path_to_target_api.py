"""The path to target through the compute and the API: performance rows (JSON and CSV), the
coaching answer, the OpenAPI document, and an incremental recompute against a full one.

One rep on one team, computed as of 5 June 2026 (25 days, 17 working days left in June):

* won: 4 deals of 9,500, created 21 December 2025 and won 31 January 2026 (a 41-day cycle);
* lost: 6 deals closed in February 2026; win rate 4 / 10 = 0.4;
* open: 3 deals of 10,000 at 50%, created in May and due 20 June: 30k open, 15k weighted;
* opportunities created in the 12 months to June: 4 + 6 + 3 = 13; throughput 10 / 13.

Rep target 38,000 for June, nothing won yet: 38k short, wins ceil(38000 / 9500) = 4, closes
ceil(4 / 0.4) = 10, opportunities ceil(4 / (0.4 x 10/13)) = 13. The 41-day cycle is longer than
the 25 days left and the 30k open is short of 38k: out of reach. The team's 50,000 target: 50k
short, 6 wins (ceil(5.26)), 15 closes, 20 opportunities (ceil(19.5)).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.deals.models import Deal
from app.performance import compute, versioning
from app.performance.models import PerformanceRow
from app.pipeline import ingest
from connectors.base import DEAL_FIELDS

AS_OF = date(2026, 6, 5)
SENTENCE = (
    "out of reach: 38k short: needs 4 more wins from 3 open deals worth 30k (15k weighted); "
    "new opportunities won't close before 30 June at a 41-day cycle"
)


@pytest.fixture
def planted(factory, session, settings):
    team = factory.team(name="East")
    rep = factory.rep(name="Ada", team_id=team.id)
    for _ in range(4):
        factory.deal(
            rep_id=rep.id,
            amount=9500.0,
            created_at=datetime(2025, 12, 21, tzinfo=UTC),
            close_date=date(2026, 1, 31),
            closed_at=datetime(2026, 1, 31, tzinfo=UTC),
        )
    for _ in range(6):
        factory.deal(
            rep_id=rep.id,
            amount=5000.0,
            status="lost",
            stage="Closed Lost",
            created_at=datetime(2026, 1, 10, tzinfo=UTC),
            close_date=date(2026, 2, 10),
            closed_at=datetime(2026, 2, 10, tzinfo=UTC),
        )
    for _ in range(3):
        factory.deal(
            rep_id=rep.id,
            amount=10000.0,
            status="open",
            stage="Negotiation",
            probability=0.5,
            created_at=datetime(2026, 5, 4, tzinfo=UTC),
            close_date=date(2026, 6, 20),
            closed_at=None,
        )
    factory.target(rep_id=rep.id, period="2026-06", value=38000.0)
    factory.target(team_id=team.id, period="2026-06", value=50000.0)
    factory.target(rep_id=rep.id, period="2026-06", metric="activities", value=10.0)
    factory.target(rep_id=rep.id, period="2026-05", value=1000.0)  # ended: no path
    snap = compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.flush()
    return rep, team, snap


def _get(client, url, headers, **params):
    r = client.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_performance_rows_carry_the_path(client, factory, planted):
    rep, team, _ = planted
    h = factory.key("viewer")
    row = _get(client, "/api/v1/performance", h, period="2026-06", metric="won_revenue")["items"]
    assert [r["rep_id"] for r in row] == [rep.id]
    assert row[0]["path_to_target"] == SENTENCE
    figures = row[0]["path_to_target_figures"]
    assert figures == {
        "metric": "won_revenue",
        "period": "2026-06",
        "gap": 38000.0,
        "wins_needed": 4,
        "closes_needed": 10,
        "opportunities_needed": 13,
        "days_left": 25,
        "working_days_left": 17,
        "deal_size": 9500.0,
        "win_rate": 0.4,
        "throughput": pytest.approx(10 / 13),
        "cycle_days": 41.0,
        "new_opportunities_can_close": False,
        "open_deals": 3,
        "open_amount": 30000.0,
        "open_pipeline": 30000.0,
        "weighted_pipeline": 15000.0,
        "pipeline_covers": False,
        "reachable": "out_of_reach",
        "sentence": SENTENCE,
    }
    teams = _get(
        client,
        "/api/v1/performance",
        h,
        period="2026-06",
        metric="won_revenue",
        subject_type="team",
    )["items"]
    assert [t["team_id"] for t in teams] == [team.id]
    t = teams[0]["path_to_target_figures"]
    assert (t["wins_needed"], t["closes_needed"], t["opportunities_needed"]) == (6, 15, 20)
    assert teams[0]["path_to_target"].startswith("out of reach: 50k short: needs 6 more wins")
    # Other metrics and ended periods have none.
    other = _get(client, "/api/v1/performance", h, period="2026-06", metric="activities")
    assert other["items"][0]["path_to_target"] is None
    assert other["items"][0]["path_to_target_figures"] is None
    may = _get(client, "/api/v1/performance", h, period="2026-05", metric="won_revenue")
    assert may["items"][0]["status"] == "missed" and may["items"][0]["path_to_target"] is None


def test_coaching_carries_the_reps_paths(client, factory, planted):
    rep, _, snap = planted
    h = factory.key("analyst")
    # No deal or activity in June yet: no driver row, but the gap still has its path.
    answer = _get(client, f"/api/v1/reps/{rep.id}/coaching", h, period="2026-06")
    assert [p["metric"] for p in answer["path_to_target"]] == ["won_revenue"]
    assert answer["path_to_target"][0]["sentence"] == SENTENCE
    assert answer["path_to_target"][0]["reachable"] == "out_of_reach"
    assert answer["drivers"] == {} and answer["coaching_focus"] is None
    assert answer["focus_reason"] == "no deal or activity in 2026-06 yet: no driver figures"
    assert answer["snapshot"] == snap.id
    # May has drivers (deals created in it) and an ended period: no path.
    may = _get(client, f"/api/v1/reps/{rep.id}/coaching", h, period="2026-05")
    assert may["path_to_target"] == [] and may["drivers"]
    # With neither, still a 404.
    r = client.get(f"/api/v1/reps/{rep.id}/coaching", params={"period": "2026-08"}, headers=h)
    assert r.status_code == 404


def test_coaching_with_drivers_and_a_path(client, factory, planted, session, settings):
    rep, _, _ = planted
    factory.activity(rep_id=rep.id, occurred_at=datetime(2026, 6, 2, 10, tzinfo=UTC))
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    answer = _get(client, f"/api/v1/reps/{rep.id}/coaching", factory.key(), period="2026-06")
    assert answer["drivers"]["window_periods"] >= 1
    assert [p["sentence"] for p in answer["path_to_target"]] == [SENTENCE]


def test_path_is_in_the_csv_export(client, factory, planted):
    h = factory.key("viewer")
    r = client.get(
        "/api/v1/performance",
        params={"period": "2026-06", "metric": "won_revenue", "format": "csv"},
        headers=h,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(r.text)))
    assert row["path_to_target"] == SENTENCE
    assert row["path_to_target_figures.wins_needed"] == "4"
    assert row["path_to_target_figures.reachable"] == "out_of_reach"


def test_openapi_types_the_path(client):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    path = components["PathToTarget"]["properties"]
    assert {"wins_needed", "closes_needed", "opportunities_needed", "reachable"} <= set(path)
    assert set(path["reachable"]["anyOf"][0]["enum"]) == {
        "on_pipeline",
        "needs_new_pipeline",
        "out_of_reach",
    }
    perf = components["PerformanceRead"]["properties"]
    assert perf["path_to_target_figures"]["anyOf"][0] == {
        "$ref": "#/components/schemas/PathToTarget"
    }
    coaching = components["CoachingRead"]["properties"]["path_to_target"]
    assert coaching["items"] == {"$ref": "#/components/schemas/PathToTarget"}


def _paths(session, version):
    rows = session.scalars(
        select(PerformanceRow).where(
            versioning.visible(PerformanceRow, version), PerformanceRow.period == "2026-06"
        )
    )
    return {(r.subject_type, r.metric): r.details for r in rows}


def test_incremental_recompute_updates_the_path_as_a_full_one(planted, session, settings):
    rep, _, _ = planted
    # A fourth open deal due in June, through the sync path (marks the day dirty).
    source_id = session.scalar(select(Deal.source_id).limit(1))
    deal = {f: None for f in DEAL_FIELDS} | {
        "external_id": "NEW-OPEN",
        "rep_id": rep.id,
        "amount": 20000.0,
        "currency": "USD",
        "status": "open",
        "stage": "Proposal",
        "probability": 0.9,
        "created_at": datetime(2026, 6, 2, tzinfo=UTC),
        "close_date": date(2026, 6, 25),
        "closed_at": None,
        "is_deleted": False,
    }
    ingest.upsert_records(session, Deal, source_id, [deal])
    inc = compute.run(session=session, settings=settings, as_of=AS_OF)
    assert inc.kind == "incremental"
    ours = _paths(session, inc.id)
    path = ours[("rep", "won_revenue")]["path_to_target"]
    # 50k open now covers the gap if enough is won; 33k weighted still does not.
    assert (path["open_deals"], path["open_amount"], path["weighted_pipeline"]) == (4, 50000, 33000)
    assert path["reachable"] == "on_pipeline" and path["pipeline_covers"] is False
    full = compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    assert _paths(session, full.id) == ours
    rewritten = session.scalars(
        select(PerformanceRow.id).where(PerformanceRow.valid_from == full.id)
    ).all()
    assert rewritten == []
