"""CSV exports neutralise spreadsheet formulas (OWASP "CSV Injection"), on every route.

CRM and CSV values reach every export: a text cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return is written with a leading ``'``; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from sqlalchemy import select

from app.alerts.models import Alert
from app.http.exports import to_csv
from app.performance import compute
from app.pipeline.jobs.models import Job
from app.sources.models import QuarantinedRecord, SyncRun
from app.targets.models import Target

AS_OF = date(2026, 2, 20)
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        # Text that is exactly a number is read as that number, never as a formula.
        ("-5", "-5"),
        ("-3.2", "-3.2"),
        ("+1e5", "+1e5"),
        ("Acme = Widgets", "Acme = Widgets"),
        (-5, "-5"),
        (-3.2, "-3.2"),
    ],
)
def test_a_cell_that_could_start_a_formula_is_written_as_text(value, written):
    text, _ = to_csv({"items": [{"cell": value, "nested": {"cell": value}}]})
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == [written, written]


def test_free_form_keys_are_neutralised_like_cells():
    text, _ = to_csv({"payload": {"=cmd": 1}})
    assert next(csv.reader(io.StringIO(text))) == ["payload.=cmd"]
    text, _ = to_csv([{"=cmd": 1}])
    assert next(csv.reader(io.StringIO(text))) == ["'=cmd"]


HOSTILE = {
    "team": '=HYPERLINK("http://evil.example","team")',
    "rep": "+cmd|' /C calc'!A0",
    "deal": "@SUM(1+1)",
    "account": "-2+3+cmd|' /C calc'!A0",
    "subject": "\t=1+1",
    "source": "=source",
    "reason": "@reason",
    "payload": "=payload",
    "alert": "=alert",
    "rule": "+rule",
    "webhook": "-webhook",
    "key": "=key",
    "job": "=job",
    "run": "@run",
}


@pytest.fixture
def hostile_world(factory, session, settings):
    team = factory.team(name=HOSTILE["team"])
    rep = factory.rep(name=HOSTILE["rep"], team_id=team.id)
    factory.target(rep_id=rep.id, period="2026-02", value=5_000)
    factory.target(team_id=team.id, period="2026-02", value=5_000)
    source = factory.source(name=HOSTILE["source"], kind="hubspot", last_error="=err")
    factory.deal(rep_id=rep.id, amount=2_000, name=HOSTILE["deal"], account=HOSTILE["account"])
    factory.deal(rep_id=rep.id, amount=-5.0, name="credit note", status="open", closed_at=None)
    factory.activity(rep_id=rep.id, subject=HOSTILE["subject"])
    peer = factory.rep(team_id=team.id)  # coaching compares a rep with their team
    factory.deal(rep_id=peer.id, amount=1_000)
    session.add_all(
        [
            QuarantinedRecord(
                source_id=source.id,
                object_type="deal",
                external_id="q1",
                record_key="q1",
                reason=HOSTILE["reason"],
                payload={"=key": HOSTILE["payload"], "amount": -3.2},
            ),
            SyncRun(source_id=source.id, status="failed", error=HOSTILE["run"]),
            Job(kind="sync", status="failed", source_id=source.id, error=HOSTILE["job"]),
        ]
    )
    rule = factory.alert_rule(name=HOSTILE["rule"])
    session.add(
        Alert(
            event_id="alrt_csv",
            event_type="target.missed",
            rule_id=rule.id,
            subject_type="rep",
            subject_id=rep.id,
            rep_id=rep.id,
            team_id=team.id,
            period="2026-02",
            summary=HOSTILE["alert"],
        )
    )
    hook, _ = factory.webhook(
        settings, "https://hooks.example.com/x", description=HOSTILE["webhook"]
    )
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    headers = factory.key("admin", name=HOSTILE["key"])
    session.commit()
    ids = {
        "rep_id": rep.id,
        "team_id": team.id,
        "target_id": session.scalar(select(Target.id).order_by(Target.id).limit(1)),
        "source_id": source.id,
        "job_id": session.scalar(select(Job.id).where(Job.source_id == source.id)),
        "rule_id": rule.id,
        "alert_id": session.scalar(select(Alert.id).where(Alert.event_id == "alrt_csv")),
        "webhook_id": hook.id,
    }
    return headers, ids


def _query(operation: dict) -> str:
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    params = {"period": "2026-02"}
    return "".join(f"{k}={v}&" for k, v in params.items() if k in names)


def _cells(text: str) -> set[str]:
    return {cell for row in csv.reader(io.StringIO(text)) for cell in row}


def _formula_cells(text: str) -> list[str]:
    return [
        cell
        for row in csv.reader(io.StringIO(text))
        for cell in row
        if cell.startswith(FORMULA) and not NUMBER.fullmatch(cell)
    ]


def test_every_csv_export_route_neutralises_formulas(client, app, hostile_world):
    headers, ids = hostile_world
    exported: dict[str, str] = {}
    for template, operations in app.openapi()["paths"].items():
        get = operations.get("get")
        if get is None or not template.startswith("/api/v1"):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), template)
        r = client.get(f"{path}?{_query(get)}format=csv", headers=headers)
        assert r.status_code == 200, (template, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/csv"), template
        assert _formula_cells(r.text) == [], template
        exported[template] = r.text
    # The hostile values did reach the exports (as text), so the checks above were not vacuous.
    neutralised = {"'" + v for v in HOSTILE.values()}
    carrying = {t for t, text in exported.items() if neutralised & _cells(text)}
    assert carrying >= {
        "/api/v1/reps",
        "/api/v1/reps/{rep_id}",
        "/api/v1/teams",
        "/api/v1/teams/{team_id}",
        "/api/v1/deals",
        "/api/v1/activities",
        "/api/v1/sources",
        "/api/v1/sources/{source_id}",
        "/api/v1/sources/{source_id}/quarantine",
        "/api/v1/sources/{source_id}/runs",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/performance",
        "/api/v1/leaderboard",
        "/api/v1/alert-rules",
        "/api/v1/alert-rules/{rule_id}",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}",
        "/api/v1/api-keys",
    }, sorted(set(exported) - carrying)
    # Numbers stay numbers: the credit note's -5 and the raw payload's -3.2.
    deals = list(csv.DictReader(io.StringIO(exported["/api/v1/deals"])))
    assert "-5.0" in {row["amount"] for row in deals}
    quarantine = exported["/api/v1/sources/{source_id}/quarantine"]
    row = next(csv.DictReader(io.StringIO(quarantine)))
    assert row["payload.amount"] == "-3.2" and row["payload.=key"] == "'" + HOSTILE["payload"]
