"""The API refuses what it does not understand (issue 16), on SQLite and PostgreSQL.

Unknown query parameters answer 422 naming them; unknown enum values 422 listing the valid
ones; unknown ids in filters 404 like the path form; inverted ranges 422 naming both ends;
``computed_on`` before the first snapshot 404; and an answer with nothing in it says why.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import update

from app.performance import compute
from app.performance.models import Snapshot
from tests.factories import Factory

AS_OF = date(2026, 11, 15)


@pytest.fixture
def world(factory: Factory, session: Any, settings: Any) -> dict[str, Any]:
    """Two teams under two managers, a rep with won deals and a target in each, computed."""
    boss = factory.rep(name="Mo", role="manager")
    other_boss = factory.rep(name="Lu", role="manager")
    north = factory.team(name="North", manager_id=boss.id)
    south = factory.team(name="South", manager_id=other_boss.id)
    ann = factory.rep(name="Ann", team_id=north.id, manager_id=boss.id)
    bob = factory.rep(name="Bob", team_id=south.id, manager_id=other_boss.id)
    for rep in (ann, bob):
        factory.target(rep_id=rep.id, period="2026-11", value=10_000)
        factory.won(rep, 4_000.0, date(2026, 11, 3))
    snap = compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.flush()
    return {"boss": boss, "north": north, "south": south, "ann": ann, "bob": bob, "snap": snap}


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _operations(client: Any) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "patch", "put", "delete"}
    ]


# -- unknown parameters


def test_every_operation_refuses_an_unknown_query_parameter(client: Any, factory: Factory) -> None:
    """Iterates the OpenAPI document: nothing is answered (or done) with a stray parameter."""
    h = factory.key("admin")
    operations = _operations(client)
    assert len(operations) > 50 and ("GET", "/health") in operations
    for method, path in operations:
        r = client.request(method, path, params={"shoe_size": "44"}, headers=h)
        error = _error(r, 422)
        assert error["code"] == "unknown_parameter", (method, path)
        assert [d["field"] for d in error["details"]] == ["shoe_size"], (method, path)
        assert "shoe_size" in error["message"]


def test_a_misspelt_filter_is_refused_with_a_suggestion(
    client: Any, factory: Factory, world
) -> None:
    h = factory.key("admin")
    error = _error(client.get("/api/v1/performance", params={"rep": 9}, headers=h), 422)
    assert error["details"][0]["field"] == "rep" and "team_id" in error["details"][0]["accepted"]
    error = _error(client.get("/api/v1/performance", params={"team": "DACH"}, headers=h), 422)
    assert error["details"][0]["did_you_mean"] == "team_id"
    assert "did you mean 'team_id'" in error["message"]
    error = _error(client.get("/api/v1/deals", params={"rep": 9, "stat": "won"}, headers=h), 422)
    assert [d["did_you_mean"] for d in error["details"]] == ["rep_id", "status"]


def test_as_of_on_a_read_endpoint_points_to_computed_on(
    client: Any, factory: Factory, world
) -> None:
    h = factory.key("admin")
    for path in ("/api/v1/performance", "/api/v1/summary", "/api/v1/leaderboard"):
        r = client.get(path, params={"as_of": "2026-11-15"}, headers=h)
        error = _error(r, 422)
        assert error["code"] == "unknown_parameter"
        assert "use computed_on" in error["message"], path
        assert error["details"][0]["did_you_mean"] == "computed_on"


def test_parameters_every_list_takes_stay_accepted_and_documented(
    client: Any, factory: Factory, world
) -> None:
    h = factory.key("admin")
    r = client.get("/api/v1/reps", params={"format": "csv", "limit": 1, "cursor": ""}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-next-cursor"]
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        get = operations.get("get")
        if not path.startswith("/api/v1") or get is None:
            continue
        names = {p["name"] for p in get.get("parameters", [])}
        assert "format" in names, path
        if "next_cursor" in str(get["responses"]["200"]):
            assert {"cursor", "limit"} <= names, path


def test_an_unknown_parameter_never_gets_a_304_or_a_kept_answer(
    client: Any, factory: Factory, session: Any, world
) -> None:
    h = factory.key("admin")
    session.commit()  # the data versions are exact once committed: 304s are possible
    first = client.get("/api/v1/summary", headers=h)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert client.get("/api/v1/summary", headers={**h, "If-None-Match": etag}).status_code == 304
    r = client.get("/api/v1/summary?as_of=2026-01-01", headers={**h, "If-None-Match": etag})
    assert _error(r, 422)["code"] == "unknown_parameter"
    again = client.get("/api/v1/summary?rep=1", headers=h)
    assert _error(again, 422)["code"] == "unknown_parameter"


# -- enums


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/performance",
        "/api/v1/leaderboard",
        "/api/v1/summary",
        "/api/v1/targets",
        "/api/v1/reps/{ann}/trend",
        "/api/v1/reps/{ann}/performance",
    ],
)
def test_an_unknown_metric_lists_the_valid_ones(
    client: Any, factory: Factory, world, path: str
) -> None:
    h = factory.key("admin")
    r = client.get(path.format(ann=world["ann"].id), params={"metric": "revenue"}, headers=h)
    error = _error(r, 422)
    assert error["details"][0]["field"] == "query.metric"
    assert "'won_revenue'" in error["details"][0]["message"]


@pytest.mark.parametrize(
    ("path", "name", "valid"),
    [
        ("/api/v1/performance", "sort", "'-gap'"),
        ("/api/v1/performance", "status", "'at_risk'"),
        ("/api/v1/performance", "subject_type", "'team'"),
        ("/api/v1/reps/{ann}/performance", "kind", "'quarter'"),
        ("/api/v1/alerts", "event_type", "'target.missed'"),
        ("/api/v1/alert-rules", "event_type", "'deal.big_win'"),
        ("/api/v1/reps", "role", "'manager'"),
        ("/api/v1/jobs", "kind", "'compute'"),
    ],
)
def test_an_unknown_enum_value_lists_the_valid_ones(
    client: Any, factory: Factory, world, path: str, name: str, valid: str
) -> None:
    h = factory.key("admin")
    r = client.get(path.format(ann=world["ann"].id), params={name: "nonsense"}, headers=h)
    detail = _error(r, 422)["details"][0]
    assert detail["field"] == f"query.{name}" and valid in detail["message"]


@pytest.mark.parametrize("path", ["/api/v1/targets", "/api/v1/alerts"])
def test_a_period_filter_that_does_not_parse_is_refused(
    client: Any, factory: Factory, world, path: str
) -> None:
    r = client.get(path, params={"period": "2026-13"}, headers=factory.key("admin"))
    assert _error(r, 422)["details"][0]["field"] == "period"


# -- ids in filters


@pytest.mark.parametrize(
    ("path", "name", "noun"),
    [
        ("/api/v1/performance", "team_id", "team"),
        ("/api/v1/performance", "manager_id", "rep"),
        ("/api/v1/leaderboard", "team_id", "team"),
        ("/api/v1/reps", "team_id", "team"),
        ("/api/v1/targets", "rep_id", "rep"),
        ("/api/v1/deals", "rep_id", "rep"),
        ("/api/v1/activities", "team_id", "team"),
        ("/api/v1/hygiene", "team_id", "team"),
        ("/api/v1/alerts", "rule_id", "alert rule"),
        ("/api/v1/jobs", "source_id", "source"),
        ("/api/v1/audit", "actor_key_id", "API key"),
    ],
)
def test_an_unknown_id_in_a_filter_is_a_404_like_the_path_form(
    client: Any, factory: Factory, world, path: str, name: str, noun: str
) -> None:
    h = factory.key("admin")
    error = _error(client.get(path, params={name: 999_999}, headers=h), 404)
    assert error["message"] == f"{noun} 999999 not found"
    assert error["details"][0]["field"] == name


def test_team_id_filter_and_path_agree(client: Any, factory: Factory, world) -> None:
    h = factory.key("admin")
    path_form = _error(client.get("/api/v1/teams/999999/performance", headers=h), 404)
    filter_form = _error(client.get("/api/v1/performance?team_id=999999", headers=h), 404)
    assert path_form["code"] == filter_form["code"] == "not_found"
    assert path_form["message"] == filter_form["message"]
    params = {"team_id": world["north"].id, "period": "2026-11"}
    ok = client.get("/api/v1/performance", params=params, headers=h)
    assert ok.status_code == 200 and ok.json()["items"]


def test_a_manager_gets_404_for_a_team_or_rep_outside_their_tree(
    client: Any, factory: Factory, world
) -> None:
    h = factory.key("manager", rep_id=world["boss"].id)
    south, bob, north = world["south"].id, world["bob"].id, world["north"].id
    assert _error(client.get(f"/api/v1/teams/{south}/performance", headers=h), 404)
    assert _error(client.get(f"/api/v1/performance?team_id={south}", headers=h), 404)
    assert _error(client.get(f"/api/v1/deals?rep_id={bob}", headers=h), 404)
    assert _error(client.get(f"/api/v1/targets?rep_id={bob}", headers=h), 404)
    assert client.get(f"/api/v1/performance?team_id={north}", headers=h).status_code == 200


# -- ranges


@pytest.mark.parametrize(
    ("path", "low", "high"),
    [
        ("/api/v1/reps/{ann}/performance", ("from", "2026-11"), ("to", "2026-09")),
        ("/api/v1/deals", ("close_from", "2026-11-30"), ("close_to", "2026-11-01")),
        (
            "/api/v1/deals",
            ("created_from", "2026-11-02T00:00:00Z"),
            ("created_before", "2026-11-02T00:00:00Z"),
        ),
        (
            "/api/v1/activities",
            ("occurred_from", "2026-11-30T00:00:00Z"),
            ("occurred_before", "2026-11-01T00:00:00Z"),
        ),
    ],
)
def test_an_inverted_range_names_both_ends(
    client: Any, factory: Factory, world, path: str, low: tuple[str, str], high: tuple[str, str]
) -> None:
    r = client.get(
        path.format(ann=world["ann"].id), params=dict([low, high]), headers=factory.key("admin")
    )
    error = _error(r, 422)
    assert error["code"] == "inverted_range"
    assert [d["field"] for d in error["details"]] == [low[0], high[0]]
    assert low[0] in error["message"] and high[0] in error["message"]


# -- computed_on


def test_computed_on_reads_a_past_snapshot_and_404s_before_the_first(
    client: Any, factory: Factory, session: Any, world
) -> None:
    h = factory.key("admin")
    computed = datetime(2026, 11, 10, 6, tzinfo=UTC)
    session.execute(update(Snapshot).values(computed_at=computed))
    session.flush()
    page = client.get("/api/v1/performance?period=2026-11&computed_on=2026-11-10", headers=h)
    assert page.status_code == 200 and page.json()["snapshot"]["id"] == world["snap"].id
    for path in (
        "/api/v1/performance",
        "/api/v1/summary",
        "/api/v1/leaderboard",
        f"/api/v1/teams/{world['north'].id}/performance",
        f"/api/v1/reps/{world['ann'].id}/trend",
        f"/api/v1/reps/{world['ann'].id}/coaching",
        f"/api/v1/reps/{world['ann'].id}/coaching/record",
        f"/api/v1/reps/{world['ann'].id}/performance",
    ):
        error = _error(client.get(path, params={"computed_on": "2026-11-09"}, headers=h), 404)
        assert "2026-11-09" in error["message"] and "2026-11-10" in error["message"], path
        assert error["details"][0]["field"] == "computed_on"


def test_computed_on_with_no_snapshot_at_all_is_a_404(client: Any, factory: Factory) -> None:
    r = client.get("/api/v1/performance?computed_on=2026-11-09", headers=factory.key("admin"))
    assert "no snapshot has been computed yet" in _error(r, 404)["message"]


def test_the_compute_body_keeps_as_of(client: Any, factory: Factory, world) -> None:
    r = client.post("/api/v1/compute", json={"as_of": "2026-11-15"}, headers=factory.key("admin"))
    assert r.status_code == 202, r.text
    r = client.post("/api/v1/compute", json={"computed_on": "2026-11-15"}, headers=factory.key())
    assert r.status_code == 422


# -- empty answers say why


def test_empty_answers_carry_a_reason_before_any_compute(client: Any, factory: Factory) -> None:
    rep = factory.rep(name="Nobody")
    team = factory.team(name="Empty")
    h = factory.key("admin")
    for path in (
        "/api/v1/performance",
        "/api/v1/summary",
        "/api/v1/leaderboard",
        f"/api/v1/teams/{team.id}/performance",
        f"/api/v1/reps/{rep.id}/trend",
        f"/api/v1/reps/{rep.id}/performance",
    ):
        body = client.get(path, headers=h).json()
        assert body["reason"].startswith("no snapshot yet"), (path, body)


def test_a_trend_with_no_data_says_so(client: Any, factory: Factory, world) -> None:
    h = factory.key("admin")
    newcomer = factory.rep(name="New", team_id=world["north"].id)
    body = client.get(
        f"/api/v1/reps/{newcomer.id}/trend", params={"end": "2026-11"}, headers=h
    ).json()
    assert body["values"] == [] and body["direction"] is None
    assert body["metric"] == "won_revenue" and body["period_kind"] == "month"
    assert (
        f"rep {newcomer.id}" in body["reason"] and f"snapshot {world['snap'].id}" in body["reason"]
    )
    full = client.get(f"/api/v1/reps/{world['ann'].id}/trend?end=2026-11", headers=h).json()
    assert full["reason"] is None and full["points"] >= 1


def test_empty_pages_say_what_was_missing(client: Any, factory: Factory, world) -> None:
    h = factory.key("admin")
    page = client.get("/api/v1/performance?period=2025-01", headers=h).json()
    assert page["items"] == [] and "2025-01" in page["reason"]
    full = client.get("/api/v1/performance?period=2026-11", headers=h).json()
    assert full["items"] and full["reason"] is None
    board = client.get("/api/v1/leaderboard?period=2025-01", headers=h).json()
    assert board["items"] == [] and "2025-01" in board["reason"]
    history = client.get(
        f"/api/v1/reps/{world['ann'].id}/performance?from=2025-01&to=2025-03", headers=h
    ).json()
    assert history["items"] == [] and f"rep {world['ann'].id}" in history["reason"]
    wins = client.get("/api/v1/wins?period=2025-01", headers=h).json()
    assert wins["items"] == [] and "2025-01" in wins["reason"]
    empty_team = factory.team(name="Nobody here")
    report = client.get(f"/api/v1/hygiene?team_id={empty_team.id}", headers=h).json()
    assert report["items"] == [] and f"team {empty_team.id}" in report["reason"]
    some = client.get("/api/v1/wins?period=2026-11&min_amount=1", headers=h).json()
    assert some["items"] and some["reason"] is None and some["items"][0]["deal_id"]


def test_a_path_rep_that_does_not_exist_is_a_404(client: Any, factory: Factory, world) -> None:
    h = factory.key("admin")
    for path in ("/api/v1/reps/999999/trend", "/api/v1/reps/999999/performance"):
        assert _error(client.get(path, headers=h), 404)["message"] == "rep 999999 not found"
