from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.deals.models import Deal
from app.pipeline.imports import service
from app.pipeline.imports.mapping import Mapping
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord
from app.teams.models import Team
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[4]
MAPPING = ROOT / "examples" / "maven-crm" / "mapping.yaml"
MAVEN = SHARED / "data" / "maven-crm"


def _maven(session, **kw):
    return service.run_import(
        session=session,
        mapping=Mapping.load(MAPPING),
        reps=service.read_csv(
            (MAVEN / "sales_teams.csv").read_bytes(), name="reps", max_rows=10**6
        ),
        deals=service.read_csv(
            (MAVEN / "sales_pipeline.csv").read_bytes(), name="deals", max_rows=10**6
        ),
        **kw,
    )


def _counts(session):
    return (
        session.scalar(select(func.count()).select_from(Rep).where(Rep.role == "rep")),
        session.scalar(select(func.count()).select_from(Rep).where(Rep.role == "manager")),
        session.scalar(select(func.count()).select_from(Deal)),
        session.scalar(select(func.count()).select_from(Team)),
    )


def test_maven_dataset_loads_and_reimport_changes_nothing(session):
    first = _maven(session)
    assert _counts(session) == (35, 6, 8800, 6 + 3)
    assert first.deals.inserted == 8800 and first.deals.quarantined == 0
    won = session.execute(
        select(func.count(), func.sum(Deal.amount)).where(Deal.status == "won")
    ).one()
    assert won[0] == 4238 and won[1] == pytest.approx(10_005_534)
    second = _maven(session)
    assert _counts(session) == (35, 6, 8800, 9)
    assert (second.deals.inserted, second.deals.updated, second.deals.unchanged) == (0, 0, 8800)
    assert second.reps.inserted == 0


def test_maven_reps_get_manager_and_team(session):
    _maven(session)
    anna = session.scalar(select(Rep).where(Rep.name == "Anna Snelling"))
    assert anna.manager.name == "Dustin Brinkmann"
    assert anna.manager.role == "manager"
    assert anna.team.name == "Central / Dustin Brinkmann"
    assert anna.team.manager_id == anna.manager_id
    assert session.get(Team, anna.team.parent_id).name == "Central"


def test_deal_fields_are_mapped(session):
    _maven(session)
    deal = session.scalar(select(Deal).where(Deal.external_id == "1C1I7A6R"))
    assert (deal.status, deal.amount, deal.currency, deal.stage) == ("won", 1054.0, "USD", "Won")
    assert str(deal.close_date) == "2017-03-01"
    assert deal.created_at.isoformat() == "2016-10-20T00:00:00+00:00"
    assert deal.closed_at is not None and deal.probability == 1.0
    assert session.get(Rep, deal.rep_id).name == "Moses Frase"


BAD_DEALS = (
    "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\n"
    "OK1,Anna Snelling,GTX Plus Basic,Cancity,Won,2017-01-02,2017-03-01,100\n"
    "BAD1,Nobody Known,GTX Plus Basic,Cancity,Won,2017-01-02,2017-03-01,100\n"
    "BAD2,Anna Snelling,GTX Plus Basic,Cancity,Closing,2017-01-02,2017-03-01,100\n"
    "BAD3,Anna Snelling,GTX Plus Basic,Cancity,Won,2017-01-02,2017-31-03,100\n"
    "BAD4,Anna Snelling,GTX Plus Basic,Cancity,Won,2017-01-02,2017-03-01,lots\n"
    ",Anna Snelling,GTX Plus Basic,Cancity,Won,2017-01-02,2017-03-01,100\n"
)


def _bad_import(session, strict=False):
    return service.run_import(
        session=session,
        mapping=Mapping.load(MAPPING),
        reps=service.read_csv(
            (MAVEN / "sales_teams.csv").read_bytes(), name="reps", max_rows=10**6
        ),
        deals=service.read_csv(BAD_DEALS.encode(), name="deals", max_rows=100),
        strict=strict,
    )


def test_bad_rows_are_quarantined_with_reason_and_the_rest_load(session):
    result = _bad_import(session)
    assert result.deals.inserted == 1
    reasons = {e["row"]: e["message"] for e in result.deals.errors}
    assert reasons[2] == "unknown owner 'Nobody Known'"
    assert reasons[3] == "unknown stage 'Closing'"
    assert reasons[4].startswith("bad date in close_date")
    assert reasons[5] == "bad amount 'lots'"
    assert reasons[6] == "missing id"
    stored = session.scalars(select(QuarantinedRecord)).all()
    assert len(stored) == 5
    bad1 = next(q for q in stored if q.external_id == "BAD1")
    assert bad1.payload["sales_agent"] == "Nobody Known" and "unknown owner" in bad1.reason
    # idempotent: a second run neither duplicates quarantine rows nor deals
    _bad_import(session)
    assert session.scalar(select(func.count()).select_from(QuarantinedRecord)) == 5
    assert session.scalar(select(func.count()).select_from(Deal)) == 1


def test_strict_import_refuses_everything(session):
    from app.core.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError) as exc, session.begin_nested():
        _bad_import(session, strict=True)
    assert [d["row"] for d in exc.value.details] == [2, 3, 4, 5, 6]
    assert session.scalar(select(func.count()).select_from(Deal)) == 0


def test_import_endpoint(client, factory):
    admin = factory.key("admin")
    files = {
        "mapping": ("mapping.yaml", MAPPING.read_bytes()),
        "reps": ("reps.csv", (MAVEN / "sales_teams.csv").read_bytes()),
        "deals": ("deals.csv", BAD_DEALS.encode()),
    }
    r = client.post("/api/v1/imports", files=files, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deals"]["inserted"] == 1 and body["deals"]["quarantined"] == 5
    job = client.get(f"/api/v1/jobs/{body['compute_job_id']}", headers=admin).json()
    assert (job["kind"], job["trigger"], job["status"]) == ("compute", "import", "succeeded")
    r = client.post("/api/v1/imports", files=files, data={"strict": "true"}, headers=admin)
    assert r.status_code == 422
    assert len(r.json()["error"]["details"]) == 5
    # analysts may not load CRM data
    r = client.post("/api/v1/imports", files=files, headers=factory.key("analyst"))
    assert r.status_code == 403


def test_mapping_errors_name_the_field(client, factory):
    files = {"mapping": ("m.yaml", b"source: x\ndeals:\n  id: a\n"), "deals": ("d.csv", b"a\n1\n")}
    r = client.post("/api/v1/imports", files=files, headers=factory.key("admin"))
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert "mapping.deals.owner" in fields and "mapping.deals.stage" in fields


def test_missing_columns_are_reported(session):
    from app.core.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError) as exc:
        service.run_import(
            session=session,
            mapping=Mapping.load(MAPPING),
            deals=service.read_csv(b"opportunity_id,sales_agent\nX,Y\n", name="deals", max_rows=10),
        )
    messages = [d["message"] for d in exc.value.details]
    assert "missing column 'deal_stage'" in messages


ACTIVITIES_MAPPING = b"""
source: crm-export
owner_key: email
date_format: "%d/%m/%Y %H:%M"
timezone: Europe/Paris
reps:
  name: "{first} {last}"
  email: email
  team: team
  start_date: started
deals:
  id: deal
  owner: owner
  stage: stage
  amount: amount
  currency: currency
  created: created
  close_date: closed
  stages: {open: {status: open, probability: 0.3}, won: {status: won}}
activities:
  id: id
  owner: owner
  type: kind
  occurred_at: when
  deal_id: deal
  types: {Call: call, "E-mail": email, Meeting: meeting}
"""


def test_activities_import_with_timezone_and_type_mapping(session):
    from app.activities.models import Activity

    mapping = Mapping.parse_text(ACTIVITIES_MAPPING.decode())
    reps = service.read_csv(
        b"first,last,email,team,started\nJo,Park,JO@x.com,Blue,01/09/2026 00:00\n",
        name="reps",
        max_rows=10,
    )
    deals = service.read_csv(
        b"deal,owner,stage,amount,currency,created,closed\n"
        b"D1,jo@x.com,won,1200.50,eur,01/10/2026 09:00,03/10/2026 10:00\n",
        name="deals",
        max_rows=10,
    )
    acts = service.read_csv(
        b"id,owner,kind,when,deal\n"
        b"A1,jo@x.com,Call,02/10/2026 09:30,D1\n"
        b"A2,jo@x.com,E-mail,02/10/2026 10:00,\n"
        b"A3,jo@x.com,Fax,02/10/2026 10:00,\n"
        b"A4,jo@x.com,Meeting,31/02/2026 10:00,\n",
        name="activities",
        max_rows=10,
    )
    result = service.run_import(
        session=session, mapping=mapping, reps=reps, deals=deals, activities=acts
    )
    assert (result.activities.inserted, result.activities.quarantined) == (2, 2)
    reasons = [e["message"] for e in result.activities.errors]
    assert reasons == ["unknown activity type 'Fax'", "bad or missing date '31/02/2026 10:00'"]
    call = session.scalar(select(Activity).where(Activity.external_id == "A1"))
    assert call.type == "call" and call.deal_external_id == "D1"
    assert call.occurred_at.isoformat() == "2026-10-02T07:30:00+00:00"  # Paris is UTC+2 then
    rep = session.get(Rep, call.rep_id)
    assert (rep.name, rep.email, str(rep.start_date), rep.team.name) == (
        "Jo Park",
        "jo@x.com",
        "2026-09-01",
        "Blue",
    )
    deal = session.scalar(select(Deal).where(Deal.external_id == "D1"))
    assert (deal.amount, deal.currency, str(deal.close_date)) == (1200.5, "EUR", "2026-10-03")
    # a changed row is an update, not a duplicate
    acts2 = service.read_csv(
        b"id,owner,kind,when,deal\nA1,jo@x.com,Meeting,02/10/2026 09:30,D1\n",
        name="activities",
        max_rows=10,
    )
    again = service.run_import(session=session, mapping=mapping, activities=acts2)
    assert (again.activities.inserted, again.activities.updated) == (0, 1)
    assert session.scalar(select(func.count()).select_from(Activity)) == 2


def test_an_import_before_the_history_horizon_says_what_to_run(client, factory):
    """Maven's deals are from 2016-17: far before the default 24 months of history."""
    files = {
        "mapping": ("mapping.yaml", MAPPING.read_bytes()),
        "reps": ("reps.csv", (MAVEN / "sales_teams.csv").read_bytes()),
        "deals": ("deals.csv", (MAVEN / "sales_pipeline.csv").read_bytes()),
    }
    r = client.post("/api/v1/imports", files=files, headers=factory.key("admin"))
    assert r.status_code == 200, r.text
    [notice] = r.json()["notices"]
    assert "before the compute's history horizon" in notice
    assert "QG_HISTORY_MONTHS=" in notice and "quotagap compute --full" in notice
    # Sent again, nothing changes, so there is nothing to say.
    again = client.post("/api/v1/imports", files=files, headers=factory.key("admin"))
    assert again.json()["notices"] == []


def test_a_file_with_too_many_columns_is_refused_before_parsing(client, factory):
    header = ",".join(f"c{i}" for i in range(100_000))
    files = {
        "mapping": ("mapping.yaml", MAPPING.read_bytes()),
        "deals": ("deals.csv", (header + "\n" + "," * 99_999 + "\n").encode()),
    }
    r = client.post("/api/v1/imports", files=files, headers=factory.key("admin"))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "deals"
    assert "columns" in r.json()["error"]["message"]
