"""`?team_id=` on /deals and /activities covers the team's subtree, as the team's figures do
(`team_scope=direct` for the team's own reps only); a team row's `records` link lists exactly
what its figure counts. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute
from app.teams.models import Team

TODAY = date(2026, 11, 18)
RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66}


@pytest.fixture
def tree(factory):
    """top > middle > bottom, and an unrelated team; one rep (with a deal and a call) in each."""
    top = factory.team()
    middle = factory.team(parent_id=top.id)
    bottom = factory.team(parent_id=middle.id)
    other = factory.team()
    reps = {}
    for name, team in (("top", top), ("middle", middle), ("bottom", bottom), ("other", other)):
        rep = factory.rep(team_id=team.id)
        factory.won(rep, 1000, date(2026, 10, 5))
        factory.activity(rep_id=rep.id, occurred_at=datetime(2026, 10, 6, 9, tzinfo=UTC))
        reps[name] = rep.id
    return {"top": top.id, "middle": middle.id, "bottom": bottom.id, "other": other.id}, reps


def _rep_ids(client, url, headers, **params):
    r = client.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return sorted(i["rep_id"] for i in r.json()["items"])


@pytest.mark.parametrize("url", ["/api/v1/deals", "/api/v1/activities"])
def test_team_filter_covers_the_subtree_unless_direct(client, factory, tree, url):
    teams, reps = tree
    h = factory.key("analyst")
    whole = sorted([reps["top"], reps["middle"], reps["bottom"]])
    assert _rep_ids(client, url, h, team_id=teams["top"]) == whole
    assert _rep_ids(client, url, h, team_id=teams["top"], team_scope="subtree") == whole
    assert _rep_ids(client, url, h, team_id=teams["top"], team_scope="direct") == [reps["top"]]
    assert _rep_ids(client, url, h, team_id=teams["middle"]) == sorted(
        [reps["middle"], reps["bottom"]]
    )
    assert _rep_ids(client, url, h, team_id=teams["bottom"]) == [reps["bottom"]]
    assert _rep_ids(client, url, h, team_id=teams["other"]) == [reps["other"]]


@pytest.mark.parametrize("url", ["/api/v1/deals", "/api/v1/activities"])
def test_subtree_stays_within_a_managers_scope(client, factory, tree, url):
    teams, reps = tree
    manager = factory.rep(role="manager")
    factory.session.get(Team, teams["middle"]).manager_id = manager.id
    factory.session.flush()
    h = factory.key("manager", rep_id=manager.id)
    assert _rep_ids(client, url, h, team_id=teams["middle"]) == sorted(
        [reps["middle"], reps["bottom"]]
    )
    # A team above theirs is not theirs to filter on: 404, as its path form answers.
    r = client.get(url, params={"team_id": teams["top"]}, headers=h)
    assert r.status_code == 404


@pytest.mark.parametrize("url", ["/api/v1/deals", "/api/v1/activities"])
def test_unknown_team_scope_is_a_422_naming_it(client, factory, tree, url):
    teams, _ = tree
    r = client.get(
        url, params={"team_id": teams["top"], "team_scope": "all"}, headers=factory.key("analyst")
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "query.team_scope"


def test_team_rows_records_link_lists_what_the_figure_counts(client, factory, session, settings):
    load_demo(
        session=session, config=DemoConfig(seed=3, today=TODAY, teams=2, reps_per_team=5, months=15)
    )
    root = session.scalar(select(Team.id).where(Team.parent_id.is_(None)))
    for metric in ("won_revenue", "calls"):
        factory.target(team_id=root, metric=metric, period="2026-10", value=100_000)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    h = factory.key("analyst")
    r = client.get(
        "/api/v1/performance",
        params={"period": "2026-10", "subject_type": "team", "team_id": root},
        headers=h,
    )
    assert r.status_code == 200, r.text
    rows = {i["metric"]: i for i in r.json()["items"] if i["team_id"] == root}
    assert set(rows) == {"won_revenue", "calls"}

    def follow(link, **extra):
        path, query = link.split("?")
        params = {**dict(p.split("=") for p in query.split("&")), **extra, "limit": 500}
        items, cursor = [], None
        while True:
            page = client.get(
                path, params={**params, "cursor": cursor} if cursor else params, headers=h
            ).json()
            items += page["items"]
            if not (cursor := page["next_cursor"]):
                return items

    won = rows["won_revenue"]
    deals = follow(won["records"], status="won")
    assert won["actual"] > 0
    assert sum(d["amount"] * RATES[d["currency"]] for d in deals) == pytest.approx(won["actual"])
    calls = rows["calls"]
    assert calls["actual"] > 0
    assert len(follow(calls["records"])) == calls["actual"]
