"""Hostile CSV rows (found by tests/test_fuzz_validation.py) are loaded or quarantined with a
reason, never a crash, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from app.deals.models import Deal
from app.pipeline.imports import service
from app.pipeline.imports.mapping import Mapping
from app.reps import service as reps_service
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord

MAPPING = Mapping.model_validate(
    {
        "source": "hostile-csv",
        "deals": {
            "id": "id",
            "owner": "owner",
            "name": "name",
            "amount": "amount",
            "stage": "stage",
            "created": "created",
            "close_date": "close_date",
            "stages": {"Won": {"status": "won"}, "Open": {"status": "open"}},
        },
    }
)
HEADER = "id,owner,name,amount,stage,created,close_date\n"


def _import(session, body: str):
    source = service.source_for(session, MAPPING.source)
    reps_service.resolve_identity(
        session=session, source_id=source.id, external_id="ann@example.com", name="Ann"
    )
    frame = service.read_csv((HEADER + body).encode(), name="deals", max_rows=100)
    return service.run_import(session=session, mapping=MAPPING, deals=frame)


def _deal(session, external_id: str) -> Deal:
    return session.scalar(select(Deal).where(Deal.external_id == external_id))


def test_a_column_mixing_utc_offsets_and_naive_times_loads(session):
    result = _import(
        session,
        "D1,ann@example.com,A,100,Won,2026-01-05T10:00:00+02:00,2026-02-01T23:30:00-05:00\n"
        "D2,ann@example.com,B,100,Won,2026-01-06 09:00,2026-02-02\n",
    )
    assert result.deals.inserted == 2 and result.deals.quarantined == 0
    d1, d2 = _deal(session, "D1"), _deal(session, "D2")
    assert d1.created_at.astimezone(UTC) == datetime(2026, 1, 5, 8, tzinfo=UTC)
    # A close date written with an offset keeps the date it was written with.
    assert d1.close_date == date(2026, 2, 1)
    assert d2.created_at.astimezone(UTC) == datetime(2026, 1, 6, 9, tzinfo=UTC)
    assert d2.close_date == date(2026, 2, 2)


def test_dates_in_year_1_or_9999_are_quarantined(session):
    result = _import(
        session,
        "Y1,ann@example.com,A,100,Won,0001-01-01,2026-02-01\n"
        "Y9,ann@example.com,A,100,Won,2026-01-01,9999-12-31\n"
        "OK,ann@example.com,A,100,Won,2026-01-01,2026-02-01\n",
    )
    reasons = {e["external_id"]: e["message"] for e in result.deals.errors}
    assert reasons == {
        "Y1": "bad date in created: '0001-01-01'",
        "Y9": "bad date in close_date: '9999-12-31'",
    }
    assert result.deals.inserted == 1


def test_unstorable_ids_are_quarantined_and_names_cleaned(session):
    long_id = "x" * 300
    result = _import(
        session,
        f"{long_id},ann@example.com,A,100,Won,2026-01-01,2026-02-01\n"
        '"N\x00L",ann@example.com,A,100,Won,2026-01-01,2026-02-01\n'
        '"H1",ann@example.com,"<b>Big</b>\x00 deal\x07",100,Won,2026-01-01,2026-02-01\n',
    )
    assert result.deals.rows == 3 and result.deals.inserted == 1
    assert result.deals.quarantined == 2
    assert all(
        "id too long or with control characters" in e["message"] for e in result.deals.errors
    )
    assert _deal(session, "H1").name == "‹b›Big‹/b› deal"
    # The quarantine keeps both rows (NUL replaced: no database text can hold it).
    kept = session.scalars(
        select(QuarantinedRecord).where(QuarantinedRecord.source_id == result.source_id)
    ).all()
    assert len(kept) == 2
    assert {q.payload["id"] for q in kept} == {long_id, "N\ufffdL"}


def test_an_unreadable_start_date_is_quarantined_not_ignored(session):
    mapping = Mapping.model_validate(
        {
            "source": "hostile-reps",
            "reps": {"name": "name", "email": "email", "start_date": "start"},
        }
    )
    body = (
        "name,email,start\n"
        "Ann,ann@example.com,2026-03-01\n"
        "Bob,bob@example.com,the first of never\n"
        "Cy,cy@example.com,\n"
    )
    frame = service.read_csv(body.encode(), name="reps", max_rows=100)
    result = service.run_import(session=session, mapping=mapping, reps=frame)
    assert (result.reps.rows, result.reps.quarantined) == (3, 1)
    (error,) = result.reps.errors
    assert error["row"] == 2 and "bad start date" in error["message"]
    names = set(session.scalars(select(Rep.name)))
    assert {"Ann", "Cy"} <= names and "Bob" not in names
    reason = session.scalar(
        select(QuarantinedRecord.reason).where(QuarantinedRecord.object_type == "rep")
    )
    assert reason is not None and "start date" in reason
