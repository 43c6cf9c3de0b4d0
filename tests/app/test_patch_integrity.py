"""PATCH with an explicit null or a name another record has answers 4xx, never 500 (issue 17)."""

from __future__ import annotations


def test_team_patch_null_name_is_422_and_duplicate_is_409(client, factory):
    a = factory.team(name="A")
    factory.team(name="B")
    h = factory.key("admin")
    r = client.patch(f"/api/v1/teams/{a.id}", json={"name": None}, headers=h)
    assert r.status_code == 422 and "name" in r.text
    r = client.patch(f"/api/v1/teams/{a.id}", json={"name": "B"}, headers=h)
    assert r.status_code == 409
    assert client.patch(f"/api/v1/teams/{a.id}", json={"name": "A"}, headers=h).status_code == 200


def test_rep_patch_duplicate_email_is_409_and_null_flag_422(client, factory):
    ana = factory.rep(name="Ana", email="ana@example.com")
    factory.rep(name="Bo", email="bo@example.com")
    h = factory.key("admin")
    r = client.patch(f"/api/v1/reps/{ana.id}", json={"email": "BO@example.com"}, headers=h)
    assert r.status_code == 409
    r = client.patch(f"/api/v1/reps/{ana.id}", json={"is_active": None}, headers=h)
    assert r.status_code == 422 and "is_active" in r.text
