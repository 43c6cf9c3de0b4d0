"""Ranks: the API's ranking equals analytics.trends.ranks, the documented definition, and a
rep's rank is a property of the snapshot (the same whatever the query filters or scopes), on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from analytics import trends
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute, ranks, reads
from app.performance.schemas import PerformanceRead
from app.reps.models import Rep

TODAY = date(2026, 11, 18)
RANKS = ("rank_in_team", "rank_in_company", "percentile_in_company")


def test_rank_matches_trends_ranks_on_random_rows():
    rng = np.random.default_rng(7)
    n = 400
    attainment = rng.choice([0.5, 0.8, 1.0, 1.2, np.nan], size=n).tolist()
    attainment = [None if np.isnan(a) else a + float(rng.integers(0, 3)) / 10 for a in attainment]
    rows = [
        PerformanceRead.model_construct(
            subject_type="rep" if i % 17 else "team",
            team_id=int(rng.integers(1, 6)) if i % 11 else None,
            period=str(rng.choice(["2026-10", "2026-11"])),
            metric=str(rng.choice(["won_revenue", "won_deals"])),
            attainment=attainment[i],
            rank_in_team=None,
            rank_in_company=None,
            percentile_in_company=None,
        )
        for i in range(n)
    ]
    ranks.rank(rows)
    reps = [r for r in rows if r.subject_type == "rep"]
    frame = pd.DataFrame(
        {
            "team_id": pd.array([r.team_id for r in reps], dtype="Int64"),
            "period": [f"{r.period}/{r.metric}" for r in reps],
            "attainment": pd.array([r.attainment for r in reps], dtype="Float64").astype(float),
        }
    )
    expected = trends.ranks(frame, metric="attainment", higher_is_better=True)
    for item, want in zip(reps, expected.to_dict("records"), strict=True):
        assert item.rank_in_company == reads.int_or_none(want["rank_in_company"])
        assert item.rank_in_team == reads.int_or_none(want["rank_in_team"])
        pct = reads.float_or_none(want["percentile_in_company"])
        assert item.percentile_in_company == (None if pct is None else round(pct, 1))
    assert all(r.rank_in_company is None for r in rows if r.subject_type == "team")
    assert any(r.rank_in_team is None and r.rank_in_company for r in reps)  # no team: no team rank


@pytest.fixture
def demo(session, settings):
    load_demo(
        session=session, config=DemoConfig(seed=3, today=TODAY, teams=2, reps_per_team=5, months=15)
    )
    return compute.run(session=session, settings=settings, as_of=TODAY, full=True)


def _get(client, url, headers, **params):
    r = client.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _ranks_by_rep(items):
    return {(i["rep_id"], i["metric"], i["period"]): tuple(i[k] for k in RANKS) for i in items}


def _all(client, h, **params):
    return _get(client, "/api/v1/performance", h, limit=500, **params)["items"]


def test_status_filter_does_not_change_ranks(client, factory, demo):
    h = factory.key("analyst")
    everyone = _ranks_by_rep(_all(client, h, period="2026-10", metric="won_revenue"))
    missed = _all(client, h, period="2026-10", metric="won_revenue", status="missed")
    assert missed and len(missed) < len(everyone)
    assert _ranks_by_rep(missed) == {k: everyone[k] for k in _ranks_by_rep(missed)}
    # the best of the missed reps is not the best rep: ranked among the missed only, it was 1
    assert min(i["rank_in_company"] for i in missed) > 1
    # every metric at once (no metric filter) ranks the same way
    achieved = _all(client, h, period="2026-10", status="achieved")
    wide = _ranks_by_rep(_all(client, h, period="2026-10"))
    assert achieved and _ranks_by_rep(achieved) == {k: wide[k] for k in _ranks_by_rep(achieved)}


def test_team_endpoint_and_manager_scope_show_the_company_ranks(client, factory, demo, session):
    h = factory.key("analyst")
    everyone = _ranks_by_rep(_all(client, h, period="2026-10"))
    manager = session.scalar(select(Rep).where(Rep.role == "manager", Rep.manager_id.is_not(None)))
    team = _get(client, f"/api/v1/teams/{manager.team_id}/performance", h, period="2026-10")
    reps = [r for r in team["rows"] if r["subject_type"] == "rep"]
    assert reps and _ranks_by_rep(reps) == {k: everyone[k] for k in _ranks_by_rep(reps)}
    assert max(r["rank_in_company"] for r in reps if r["metric"] == "won_revenue") > len(
        {r["rep_id"] for r in reps}
    ), "a sub-team's worst rep ranks below the sub-team's size in the company"
    scoped = _all(client, factory.key("manager", rep_id=manager.id), period="2026-10")
    assert scoped and len(scoped) < len(everyone)
    assert _ranks_by_rep(scoped) == {k: everyone[k] for k in _ranks_by_rep(scoped)}
    filtered = _all(client, h, period="2026-10", team_id=manager.team_id)
    assert _ranks_by_rep(filtered) == {k: everyone[k] for k in _ranks_by_rep(filtered)}


def test_rep_history_shows_the_ranks_of_each_period(client, factory, demo):
    h = factory.key("analyst")
    everyone = _all(client, h, period="2026-10", metric="won_revenue")
    rep = max(everyone, key=lambda i: i["rank_in_company"] or 0)
    history = _get(
        client,
        f"/api/v1/reps/{rep['rep_id']}/performance",
        h,
        metric="won_revenue",
        kind="month",
        **{"from": "2026-10", "to": "2026-10"},
    )
    (row,) = history["items"]
    assert tuple(row[k] for k in RANKS) == tuple(rep[k] for k in RANKS)
    assert row["rank_in_company"] > 1


def test_leaderboard_team_filter_keeps_company_ranks(client, factory, demo, session):
    h = factory.key("viewer")
    board = _get(client, "/api/v1/leaderboard", h, period="2026-10", metric="won_revenue")
    team_id = session.scalar(select(Rep.team_id).where(Rep.id == board["items"][-1]["rep_id"]))
    team = _get(
        client, "/api/v1/leaderboard", h, period="2026-10", metric="won_revenue", team_id=team_id
    )
    ranked = {i["rep_id"]: (i["rank"], i["percentile"]) for i in board["items"]}
    assert team["items"] and all(
        (i["rank"], i["percentile"]) == ranked[i["rep_id"]] for i in team["items"]
    )
