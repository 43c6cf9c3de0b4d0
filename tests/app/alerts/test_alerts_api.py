from __future__ import annotations

from app.alerts.models import Alert


def _alert(session, **kw) -> Alert:
    defaults = {
        "event_id": f"alrt_{kw.get('subject_id', 1)}_{kw.get('period', 'p')}_{len(kw)}",
        "event_type": "target.missed",
        "subject_type": "rep",
        "subject_id": 1,
        "summary": "missed",
        "period": "2026-10",
    }
    alert = Alert(**{**defaults, **kw})
    session.add(alert)
    session.flush()
    return alert


def test_rule_lifecycle(client, factory):
    h = factory.key("analyst")
    team = factory.team()
    r = client.post(
        "/api/v1/alert-rules",
        json={
            "name": "Falling behind",
            "event_type": "target.at_risk",
            "team_ids": [team.id],
            "params": {"pace_below": 0.7},
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    # Omitted thresholds take their defaults, so the stored rule says what it does.
    assert rule["params"] == {"pace_below": 0.7, "min_elapsed": 0.25}
    r = client.patch(
        f"/api/v1/alert-rules/{rule['id']}",
        json={"is_enabled": False, "params": {"min_elapsed": 0.5}},
        headers=h,
    )
    assert r.status_code == 200
    assert (r.json()["is_enabled"], r.json()["params"]["min_elapsed"]) == (False, 0.5)
    listed = client.get("/api/v1/alert-rules", headers=h).json()["items"]
    assert [x["id"] for x in listed] == [rule["id"]]
    assert client.delete(f"/api/v1/alert-rules/{rule['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/alert-rules/{rule['id']}", headers=h).status_code == 404


def test_bad_rules_name_the_field(client, factory):
    h = factory.key("admin")
    cases = [
        ({"name": "x", "event_type": "target.exploded"}, "event_type"),
        ({"name": "x", "event_type": "target.missed", "params": {"pace_below": 1}}, "params"),
        ({"name": "x", "event_type": "deal.big_win", "params": {"min_amount": -5}}, "params"),
        ({"name": "x", "event_type": "target.missed", "period_kinds": ["decade"]}, "period_kinds"),
        ({"name": "", "event_type": "target.missed"}, "name"),
    ]
    for body, field in cases:
        r = client.post("/api/v1/alert-rules", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)
    r = client.post(
        "/api/v1/alert-rules",
        json={"name": "x", "event_type": "target.missed", "team_ids": [987654]},
        headers=h,
    )
    assert r.status_code == 422 and "team_ids" in r.text


def test_rule_roles(client, factory):
    body = {"name": "x", "event_type": "target.missed"}
    manager = factory.key("manager", rep_id=factory.rep(role="manager").id)
    assert client.post("/api/v1/alert-rules", json=body).status_code == 401
    for headers in (factory.key("viewer"), manager):
        assert client.post("/api/v1/alert-rules", json=body, headers=headers).status_code == 403
    assert client.get("/api/v1/alert-rules", headers=factory.key("viewer")).status_code == 403
    assert client.get("/api/v1/alert-rules", headers=manager).status_code == 200


def test_alert_list_filters_and_manager_scope(client, factory, session):
    mo = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=mo.id)
    south = factory.team(name="South")
    ann = factory.rep(team_id=north.id)
    bea = factory.rep(team_id=south.id)
    a1 = _alert(session, event_id="alrt_a1", rep_id=ann.id, team_id=north.id, subject_id=ann.id)
    a2 = _alert(
        session,
        event_id="alrt_a2",
        event_type="deal.big_win",
        rep_id=bea.id,
        team_id=south.id,
        subject_type="deal",
        subject_id=77,
    )
    a3 = _alert(
        session,
        event_id="alrt_a3",
        event_type="team.wide_gap",
        team_id=north.id,
        subject_type="team",
        subject_id=north.id,
        period="2026-09",
    )
    admin = factory.key("admin")
    items = client.get("/api/v1/alerts", headers=admin).json()["items"]
    assert [i["id"] for i in items] == [a1.id, a2.id, a3.id]
    assert items[0]["event_id"] == "alrt_a1"
    got = client.get("/api/v1/alerts", params={"event_type": "deal.big_win"}, headers=admin)
    assert [i["id"] for i in got.json()["items"]] == [a2.id]
    got = client.get("/api/v1/alerts", params={"period": "2026-09"}, headers=admin)
    assert [i["id"] for i in got.json()["items"]] == [a3.id]
    got = client.get("/api/v1/alerts", params={"team_id": north.id, "limit": 1}, headers=admin)
    assert [i["id"] for i in got.json()["items"]] == [a1.id] and got.json()["next_cursor"]
    # The manager of North sees North's alerts only; South's is a 404 to them.
    manager = factory.key("manager", rep_id=mo.id)
    items = client.get("/api/v1/alerts", headers=manager).json()["items"]
    assert [i["id"] for i in items] == [a1.id, a3.id]
    assert client.get(f"/api/v1/alerts/{a2.id}", headers=manager).status_code == 404
    assert client.get(f"/api/v1/alerts/{a1.id}", headers=manager).status_code == 200
    assert client.get("/api/v1/alerts", headers=factory.key("viewer")).status_code == 403
    types = client.get("/api/v1/alerts/event-types", headers=admin).json()["items"]
    assert "target.missed" in types and "alert.delivery_exhausted" in types
