from __future__ import annotations

import pytest

from app.sources.models import QuarantinedRecord, Source


def test_create_source_hides_credentials(client, factory, session):
    h = factory.key("admin")
    body = {
        "kind": "hubspot",
        "name": "HubSpot EU",
        "base_url": "https://api-eu1.hubapi.com/",
        "credentials": {"access_token": "pat-eu1-SECRET"},
        "schedule": {"interval_minutes": 30},
    }
    r = client.post("/api/v1/sources", json=body, headers=h)
    assert r.status_code == 201, r.text
    out = r.json()
    assert "SECRET" not in r.text and "credentials" not in out
    assert out["has_credentials"] is True and out["base_url"] == "https://api-eu1.hubapi.com"
    assert out["schedule"] == {"interval_minutes": 30}
    stored = session.get(Source, out["id"]).credentials_encrypted
    assert "SECRET" not in stored
    listed = client.get("/api/v1/sources", headers=h).json()["items"]
    assert [s["name"] for s in listed] == ["HubSpot EU"] and "SECRET" not in str(listed)
    assert client.post("/api/v1/sources", json=body, headers=h).status_code == 409


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"kind": "zoho"}, "kind"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"schedule": {"interval_minutes": 0}}, "schedule.interval_minutes"),
    ],
)
def test_bad_source_names_the_field(client, factory, patch, field):
    body = {"kind": "pipedrive", "name": "P", "credentials": {"api_token": "t"}, **patch}
    r = client.post("/api/v1/sources", json=body, headers=factory.key("admin"))
    assert r.status_code == 422
    assert any(d["field"].endswith(field) for d in r.json()["error"]["details"])


def test_salesforce_needs_an_instance_url(client, factory):
    body = {"kind": "salesforce", "name": "SF", "credentials": {"refresh_token": "r"}}
    r = client.post("/api/v1/sources", json=body, headers=factory.key("admin"))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "base_url"


def test_quarantine_and_runs_are_listed(client, factory, session):
    source = factory.source(kind="pipedrive", name="pd")
    session.add(
        QuarantinedRecord(
            source_id=source.id,
            object_type="deal",
            external_id="7",
            record_key="7",
            reason="unknown stage 'x'",
            payload={"id": 7, "stage_id": 99},
        )
    )
    session.flush()
    h = factory.key("analyst")
    items = client.get(f"/api/v1/sources/{source.id}/quarantine", headers=h).json()["items"]
    assert items[0]["reason"] == "unknown stage 'x'" and items[0]["payload"]["stage_id"] == 99
    assert client.get(f"/api/v1/sources/{source.id}/runs", headers=h).json()["items"] == []
    assert client.get("/api/v1/sources/999/quarantine", headers=h).status_code == 404


def test_only_admins_manage_sources(client, factory):
    body = {"kind": "hubspot", "name": "H", "credentials": {"access_token": "t"}}
    assert (
        client.post("/api/v1/sources", json=body, headers=factory.key("analyst")).status_code == 403
    )
    assert client.get("/api/v1/sources", headers=factory.key("viewer")).status_code == 403


def test_patch_replaces_credentials_without_showing_them(client, factory, session, settings):
    from app.core import secrets

    h = factory.key("admin")
    sid = client.post(
        "/api/v1/sources",
        headers=h,
        json={"kind": "pipedrive", "name": "P", "credentials": {"api_token": "old"}},
    ).json()["id"]
    r = client.patch(
        f"/api/v1/sources/{sid}",
        headers=h,
        json={"credentials": {"api_token": "new-token"}, "is_enabled": False},
    )
    assert r.status_code == 200 and "new-token" not in r.text and r.json()["is_enabled"] is False
    stored = session.get(Source, sid).credentials_encrypted
    assert secrets.decrypt(settings, stored) == {"api_token": "new-token"}
