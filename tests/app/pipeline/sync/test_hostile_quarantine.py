"""Hostile CRM records reach quarantine intact on both backends (PostgreSQL refuses NUL)."""

from __future__ import annotations

from sqlalchemy import select

from app.pipeline import ingest
from app.sources.models import QuarantinedRecord
from connectors import base, salesforce


def test_nul_bytes_and_huge_ids_are_quarantined_not_fatal(session, factory):
    source = factory.default_source()
    hostile = [
        {"Id": "006\x00abc", "Name": "nul in id", "SystemModstamp": "2026-01-01T00:00:00Z"},
        {"Id": "x" * 5000, "Name": "<script>x</script>\x00", "SystemModstamp": "bad"},
        {"Id": "0065g00000AbCdE", "OwnerId": ["not", "an", "id"], "Name": "n"},
    ]
    page = base.map_page(
        hostile,
        salesforce.deal_mapper(None, "USD"),
        id_of=lambda r: r.get("Id"),
        cursor_of=lambda r: None,
    )
    assert page.records == [] and len(page.rejects) == 3
    stored = ingest.quarantine(
        session,
        source.id,
        "deal",
        [(r.external_id, r.reason, r.raw) for r in page.rejects],
    )
    session.flush()
    assert stored == 3
    rows = session.scalars(
        select(QuarantinedRecord).where(QuarantinedRecord.source_id == source.id)
    ).all()
    assert len(rows) == 3
    by_reason = {r.reason: r for r in rows}
    assert all(r.reason for r in rows)
    nul = next(r for r in rows if r.payload["Name"] == "nul in id")
    assert nul.external_id is None and nul.record_key.startswith("sha256:")
    assert nul.payload["Id"] == "006\ufffdabc"  # kept, with NUL made storable
    assert any("OwnerId" in reason for reason in by_reason)
    # Quarantining the same records again is idempotent.
    assert (
        ingest.quarantine(
            session, source.id, "deal", [(r.external_id, r.reason, r.raw) for r in page.rejects]
        )
        == 3
    )
    session.flush()
    assert len(session.scalars(select(QuarantinedRecord)).all()) == 3
