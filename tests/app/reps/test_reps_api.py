from __future__ import annotations

from datetime import date

import pytest


@pytest.fixture
def org(factory):
    """VP over two managers; each manager has a team of two reps; one sub-team under east."""
    vp = factory.rep(name="Vera VP", role="manager")
    east_mgr = factory.rep(name="Erin East", role="manager", manager_id=vp.id)
    west_mgr = factory.rep(name="Will West", role="manager", manager_id=vp.id)
    root = factory.team(name="Sales", manager_id=vp.id)
    east = factory.team(name="East", manager_id=east_mgr.id, parent_id=root.id)
    east_sub = factory.team(name="East SMB", parent_id=east.id)
    west = factory.team(name="West", manager_id=west_mgr.id, parent_id=root.id)
    e1 = factory.rep(name="E1", team_id=east.id, manager_id=east_mgr.id)
    e2 = factory.rep(name="E2", team_id=east_sub.id)
    w1 = factory.rep(name="W1", team_id=west.id, manager_id=west_mgr.id)
    return {
        "vp": vp,
        "east_mgr": east_mgr,
        "west_mgr": west_mgr,
        "east": east,
        "east_sub": east_sub,
        "west": west,
        "e1": e1,
        "e2": e2,
        "w1": w1,
    }


def test_list_reps_shows_team_and_manager(client, factory, org):
    r = client.get("/api/v1/reps", headers=factory.key("viewer"))
    assert r.status_code == 200
    e1 = next(x for x in r.json()["items"] if x["name"] == "E1")
    assert (e1["team_name"], e1["manager_name"]) == ("East", "Erin East")


def test_manager_sees_only_their_tree(client, factory, org):
    h = factory.key("manager", rep_id=org["east_mgr"].id)
    names = {x["name"] for x in client.get("/api/v1/reps", headers=h).json()["items"]}
    assert names == {"Erin East", "E1", "E2"}
    assert client.get(f"/api/v1/reps/{org['e2'].id}", headers=h).status_code == 200
    assert client.get(f"/api/v1/reps/{org['w1'].id}", headers=h).status_code == 404
    teams = {x["name"] for x in client.get("/api/v1/teams", headers=h).json()["items"]}
    assert teams == {"East", "East SMB"}
    assert client.get(f"/api/v1/teams/{org['west'].id}", headers=h).status_code == 404


def test_vp_manager_sees_everything_below(client, factory, org):
    h = factory.key("manager", rep_id=org["vp"].id)
    names = {x["name"] for x in client.get("/api/v1/reps", headers=h).json()["items"]}
    assert names == {"Vera VP", "Erin East", "Will West", "E1", "E2", "W1"}


def test_manager_cannot_read_other_teams_records(client, factory, org):
    factory.deal(rep_id=org["w1"].id, external_id="WEST-DEAL")
    factory.deal(rep_id=org["e1"].id, external_id="EAST-DEAL")
    h = factory.key("manager", rep_id=org["east_mgr"].id)
    ids = [d["external_id"] for d in client.get("/api/v1/deals", headers=h).json()["items"]]
    assert ids == ["EAST-DEAL"]
    # A rep outside the manager's tree in a filter is a 404, as /reps/{id} answers.
    r = client.get("/api/v1/deals", params={"rep_id": org["w1"].id}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["message"] == f"rep {org['w1'].id} not found"


def test_admin_sets_team_manager_and_start_date(client, factory, org):
    h = factory.key("admin")
    r = client.patch(
        f"/api/v1/reps/{org['w1'].id}",
        json={
            "team_id": org["east"].id,
            "manager_id": org["east_mgr"].id,
            "start_date": "2026-09-15",
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["team_name"], r.json()["manager_name"], r.json()["start_date"]) == (
        "East",
        "Erin East",
        "2026-09-15",
    )


def test_rep_update_validation(client, factory, org):
    h = factory.key("admin")
    rid = org["e1"].id
    r = client.patch(f"/api/v1/reps/{rid}", json={"team_id": 999999}, headers=h)
    assert r.status_code == 404
    r = client.patch(f"/api/v1/reps/{rid}", json={"manager_id": rid}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "manager_id"
    # VP -> reports to E1's manager would create a cycle
    r = client.patch(
        f"/api/v1/reps/{org['vp'].id}", json={"manager_id": org["east_mgr"].id}, headers=h
    )
    assert r.status_code == 422
    r = client.patch(f"/api/v1/reps/{rid}", json={"start_date": "yesterday"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "start_date"
    r = client.patch(f"/api/v1/reps/{rid}", json={"nickname": "x"}, headers=h)
    assert r.status_code == 422
    assert (
        client.patch(f"/api/v1/reps/{rid}", json={}, headers=factory.key("analyst")).status_code
        == 403
    )


def test_one_person_in_two_sources_is_one_rep(session, factory):
    from app.reps import service

    hub = factory.source(kind="hubspot", name="hub")
    sf = factory.source(kind="salesforce", name="sf")
    a = service.resolve_identity(
        session=session,
        source_id=hub.id,
        external_id="101",
        name="Jo Park",
        email="Jo.Park@Example.com",
    )
    b = service.resolve_identity(
        session=session,
        source_id=sf.id,
        external_id="005XX",
        name="Jo Park",
        email="jo.park@example.com ",
    )
    again = service.resolve_identity(
        session=session, source_id=hub.id, external_id="101", name="Jo Park"
    )
    assert a.id == b.id == again.id
    assert a.email == "jo.park@example.com"
    assert {(i.source_id, i.external_id) for i in a.identities} == {
        (hub.id, "101"),
        (sf.id, "005XX"),
    }
    assert a.start_date is None or a.start_date <= date.today()


def test_teams_create_and_cycle_refused(client, factory):
    h = factory.key("admin")
    a = client.post("/api/v1/teams", json={"name": "A"}, headers=h).json()
    b = client.post("/api/v1/teams", json={"name": "B", "parent_id": a["id"]}, headers=h).json()
    assert client.post("/api/v1/teams", json={"name": "A"}, headers=h).status_code == 409
    r = client.patch(f"/api/v1/teams/{a['id']}", json={"parent_id": b["id"]}, headers=h)
    assert r.status_code == 422


def test_deals_and_activities_filters_trace_a_number(client, factory):
    from datetime import UTC, datetime

    rep = factory.rep()
    factory.deal(rep_id=rep.id, external_id="Q4-WON", close_date=date(2026, 11, 2))
    factory.deal(rep_id=rep.id, external_id="Q3-WON", close_date=date(2026, 9, 2))
    factory.deal(rep_id=rep.id, external_id="Q4-DEL", close_date=date(2026, 11, 3), is_deleted=True)
    factory.deal(rep_id=rep.id, external_id="Q4-LOST", status="lost", close_date=date(2026, 11, 4))
    factory.activity(rep_id=rep.id, occurred_at=datetime(2026, 11, 23, 9, tzinfo=UTC))
    factory.activity(rep_id=rep.id, occurred_at=datetime(2026, 11, 30, 9, tzinfo=UTC))
    h = factory.key("analyst")
    params = {"rep_id": rep.id, "status": "won", "closed_in": "2026-Q4"}
    ids = [
        d["external_id"]
        for d in client.get("/api/v1/deals", params=params, headers=h).json()["items"]
    ]
    assert ids == ["Q4-WON"]
    params["include_deleted"] = "true"
    assert len(client.get("/api/v1/deals", params=params, headers=h).json()["items"]) == 2
    acts = client.get("/api/v1/activities", params={"occurred_in": "2026-W48"}, headers=h).json()[
        "items"
    ]
    assert len(acts) == 1 and acts[0]["occurred_at"] == "2026-11-23T09:00:00Z"
    r = client.get("/api/v1/deals", params={"closed_in": "Q4"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "closed_in"
    r = client.get("/api/v1/activities", params={"occurred_from": "2026-11-01T00:00:00"}, headers=h)
    assert r.status_code == 422  # naive datetimes are ambiguous
    assert client.get("/api/v1/deals", headers=factory.key("viewer")).status_code == 403
