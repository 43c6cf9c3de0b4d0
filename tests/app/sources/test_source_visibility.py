"""Who sees what of a source: raw quarantined rows and sync errors follow the role policy."""

from __future__ import annotations

from app.sources.models import QuarantinedRecord


def test_a_manager_cannot_read_another_teams_raw_quarantined_rows(client, factory, session):
    boss = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=boss.id)
    south = factory.team(name="South")
    factory.rep(team_id=north.id, manager_id=boss.id)
    theirs = factory.rep(team_id=south.id, email="sam@south.example")
    source = factory.source(kind="hubspot", name="crm")
    session.add(
        QuarantinedRecord(
            source_id=source.id,
            object_type="deal",
            external_id="d1",
            record_key="d1",
            reason="unknown stage 'x'",
            payload={"owner_email": theirs.email, "amount": 90_000, "stage": "x"},
        )
    )
    session.flush()
    url = f"/api/v1/sources/{source.id}/quarantine"
    r = client.get(url, headers=factory.key("manager", rep_id=boss.id))
    assert r.status_code == 403 and "sam@south.example" not in r.text
    for role in ("admin", "analyst"):
        items = client.get(url, headers=factory.key(role)).json()["items"]
        assert items[0]["payload"]["owner_email"] == "sam@south.example"
    assert client.get(url, headers=factory.key("viewer")).status_code == 403


def test_the_summary_shows_viewers_no_sync_error(client, factory):
    boss = factory.rep(name="Mo", role="manager")
    factory.team(name="North", manager_id=boss.id)
    factory.source(
        kind="hubspot", name="crm", last_error="CrmError: HTTP 500", consecutive_failures=2
    )
    keys = {
        "viewer": factory.key("viewer"),
        "manager": factory.key("manager", rep_id=boss.id),
        "admin": factory.key("admin"),
    }
    seen = {}
    for role, headers in keys.items():
        r = client.get("/api/v1/summary", headers=headers)
        assert r.status_code == 200, r.text
        (source,) = r.json()["sources"]
        seen[role] = (source["name"], source["last_error"], source["consecutive_failures"])
    # Freshness stays on a viewer's wallboard; the error text is for those who read sources.
    assert seen["viewer"] == ("crm", None, 2)
    assert seen["manager"] == seen["admin"] == ("crm", "CrmError: HTTP 500", 2)
    assert client.get("/api/v1/sources", headers=keys["viewer"]).status_code == 403
