"""POST /api/v1/sources/{id}/quarantine/replay: records quarantined for an owner that is now
known are stored and leave quarantine; the others stay, with their reasons (issue 20)."""

from __future__ import annotations

from sqlalchemy import select

from app.deals.models import Deal
from app.pipeline import ingest
from app.reps.models import RepIdentity
from app.sources.models import QuarantinedRecord


def _mapped(external_id: str, owner: str) -> dict:
    """A deal as the engine quarantines it: mapped fields, dates as ISO text."""
    return {
        "external_id": external_id,
        "owner_external_id": owner,
        "name": "Acme renewal",
        "account": None,
        "amount": 1200.0,
        "currency": "USD",
        "stage": "Closed Won",
        "pipeline": "default",
        "probability": 1.0,
        "status": "won",
        "created_at": "2026-09-01T10:00:00+00:00",
        "close_date": "2026-10-15",
        "closed_at": "2026-10-15T16:00:00+00:00",
        "source_modified_at": "2026-10-15T16:00:00+00:00",
        "is_deleted": False,
    }


def test_records_of_a_known_owner_are_stored_and_leave_quarantine(client, factory, session):
    source = factory.source(kind="hubspot")
    rep = factory.rep(name="Late Owner")
    ingest.quarantine(
        session,
        source.id,
        "deal",
        [
            ("d1", "unknown owner '77'", _mapped("d1", "77")),
            ("d2", "unknown owner '88'", _mapped("d2", "88")),
            ("d3", "unknown dealstage 'x'", {"id": "d3", "properties": {}}),
        ],
    )
    session.add(RepIdentity(rep_id=rep.id, source_id=source.id, external_id="77"))
    session.flush()
    h = factory.key("admin")

    r = client.post(f"/api/v1/sources/{source.id}/quarantine/replay", headers=h)

    assert r.status_code == 200, r.text
    run = r.json()
    assert (run["kind"], run["status"], run["inserted"]) == ("replay", "succeeded", 1)
    assert run["details"]["replayed"] == 1 and run["details"]["still_quarantined"] == 2
    deal = session.scalar(select(Deal).where(Deal.external_id == "d1"))
    assert deal is not None and deal.rep_id == rep.id
    assert str(deal.close_date) == "2026-10-15" and deal.closed_at.hour == 16
    left = session.scalars(select(QuarantinedRecord.record_key)).all()
    assert sorted(left) == ["d2", "d3"]
    # Replaying again stores nothing twice.
    again = client.post(f"/api/v1/sources/{source.id}/quarantine/replay", headers=h).json()
    assert (again["inserted"], again["details"]["replayed"]) == (0, 0)


def test_replay_needs_an_admin_key(client, factory):
    source = factory.source(kind="hubspot")
    r = client.post(
        f"/api/v1/sources/{source.id}/quarantine/replay", headers=factory.key("analyst")
    )
    assert r.status_code == 403
    missing = client.post("/api/v1/sources/999999/quarantine/replay", headers=factory.key("admin"))
    assert missing.status_code == 404
