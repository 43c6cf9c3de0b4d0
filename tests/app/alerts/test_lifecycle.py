"""An alert follows its figures: updated while its condition holds, resolved once it clears.

Team North (manager Mo) has reps Ann, Bob and Cy, each with a 10,000 won_revenue target per
month. As of 2026-11-15, October is closed: Ann won 12,000, Bob 3,000 and Cy 2,000, so Bob and
Cy missed it and two of three reps are below target (a team-wide gap). November is half gone:
Ann has 6,000, Bob 1,000 and Cy nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.alerts import evaluate
from app.alerts.models import Alert
from app.performance import compute
from app.pipeline import alerting
from app.targets.models import Target
from app.webhooks.models import WebhookDelivery

AS_OF = date(2026, 11, 15)


@pytest.fixture
def team(factory, session, settings):
    mo = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=mo.id)
    reps = {
        n: factory.rep(name=n, team_id=north.id, manager_id=mo.id) for n in ("Ann", "Bob", "Cy")
    }
    for month in ("2026-10", "2026-11"):
        for rep in reps.values():
            factory.target(rep_id=rep.id, period=month, value=10_000)
    factory.won(reps["Ann"], 12_000, date(2026, 10, 20))
    factory.won(reps["Bob"], 3_000, date(2026, 10, 20))
    factory.won(reps["Cy"], 2_000, date(2026, 10, 20))
    factory.won(reps["Ann"], 6_000, date(2026, 11, 3))
    factory.won(reps["Bob"], 1_000, date(2026, 11, 3))
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    return {"team": north, "manager": mo, **reps}


def _recompute(session, settings, as_of: date = AS_OF) -> evaluate.Result:
    # Full: the factories write records directly, not through a sync that marks them dirty.
    compute.run(session=session, settings=settings, as_of=as_of, full=True)
    return alerting.evaluate(session=session, settings=settings)


def _alert(session, event_type: str, *, rep_id=None, team_id=None, period="2026-10") -> Alert:
    session.expire_all()
    stmt = select(Alert).where(Alert.event_type == event_type, Alert.period == period)
    if rep_id is not None:
        stmt = stmt.where(Alert.rep_id == rep_id)
    if team_id is not None:
        stmt = stmt.where(Alert.team_id == team_id, Alert.subject_type == "team")
    return session.scalars(stmt).one()


def _deliveries(session, event_type: str) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event_type == event_type)
            .order_by(WebhookDelivery.id)
        )
    )


def _target(session, rep_id: int, period: str) -> Target:
    return session.scalars(
        select(Target).where(Target.rep_id == rep_id, Target.period == period)
    ).one()


def test_changed_figures_update_the_alert_and_emit_updated(session, settings, factory, team):
    factory.alert_rule("target.missed")
    factory.webhook(settings, "https://hooks.example.com/all")
    alerting.evaluate(session=session, settings=settings)
    raised = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert (raised.state, raised.revision, raised.updated_at) == ("open", 0, None)

    # A late October deal for Bob: still a miss, with other figures.
    factory.won(team["Bob"], 2_000, date(2026, 10, 28))
    result = _recompute(session, settings)
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert result.alerts == [] and [a.id for a in result.updated] == [bob.id]
    assert (bob.state, bob.revision) == ("open", 1) and bob.updated_at is not None
    # The figures it was raised on stay; the current ones are beside them.
    assert bob.data["actual"] == pytest.approx(3_000)
    assert bob.current["actual"] == pytest.approx(5_000)
    assert bob.current["gap"] == pytest.approx(5_000)
    assert bob.current["attainment"] == pytest.approx(0.5)
    assert "5,000 of 10,000 (50%)" in bob.current_summary
    assert "3,000 of 10,000 (30%)" in bob.summary
    # Cy's figures did not change: nothing happened to Cy's alert.
    cy = _alert(session, "target.missed", rep_id=team["Cy"].id)
    assert (cy.revision, cy.updated_at) == (0, None)

    (update,) = _deliveries(session, "target.missed.updated")
    assert update.alert_id == bob.id and update.message_id != bob.event_id
    body = json.loads(update.body)
    assert body["type"] == "target.missed.updated"
    data = body["data"]
    assert (data["alert_id"], data["event_id"], data["state"]) == (bob.id, bob.event_id, "open")
    assert data["previous"]["actual"] == pytest.approx(3_000)
    assert data["current"]["actual"] == pytest.approx(5_000)
    assert set(data["changed"]) >= {"actual", "gap", "attainment"}
    assert data["summary"] == bob.current_summary


def test_the_same_figures_again_emit_nothing(session, settings, factory, team):
    factory.alert_rule("target.missed")
    factory.alert_rule("team.wide_gap")
    factory.webhook(settings, "https://hooks.example.com/all")
    alerting.evaluate(session=session, settings=settings)
    factory.won(team["Bob"], 2_000, date(2026, 10, 28))
    first = _recompute(session, settings)
    assert len(first.updated) == 2  # Bob's miss and the team's gap
    before = len(list(session.scalars(select(WebhookDelivery))))
    for _ in range(2):
        again = _recompute(session, settings)
        assert (again.alerts, again.updated, again.resolved) == ([], [], [])
    assert len(list(session.scalars(select(WebhookDelivery)))) == before
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert bob.revision == 1


def test_a_miss_made_good_is_resolved(session, settings, factory, team):
    factory.alert_rule("target.missed")
    only_resolved, _ = factory.webhook(
        settings, "https://hooks.example.com/resolved", event_types=["target.missed.resolved"]
    )
    raised_only, _ = factory.webhook(
        settings, "https://hooks.example.com/raised", event_types=["target.missed"]
    )
    alerting.evaluate(session=session, settings=settings)
    factory.won(team["Bob"], 8_000, date(2026, 10, 28))
    result = _recompute(session, settings)
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert [a.id for a in result.resolved] == [bob.id]
    assert bob.state == "resolved" and bob.resolved_at is not None
    assert bob.resolved_reason == "condition_cleared"
    # The figures at resolution: 11,000 of 10,000.
    assert bob.current["actual"] == pytest.approx(11_000)
    assert bob.current["status"] == "achieved"
    assert bob.data["actual"] == pytest.approx(3_000)

    (resolved,) = _deliveries(session, "target.missed.resolved")
    assert resolved.endpoint_id == only_resolved.id and resolved.alert_id == bob.id
    data = json.loads(resolved.body)["data"]
    assert data["state"] == "resolved" and data["resolved_reason"] == "condition_cleared"
    assert data["previous"]["actual"] == pytest.approx(3_000)
    assert data["current"]["actual"] == pytest.approx(11_000)
    # The endpoint subscribed to raised alerts only got the two raised, nothing more.
    got = session.scalars(
        select(WebhookDelivery.event_type).where(WebhookDelivery.endpoint_id == raised_only.id)
    ).all()
    assert got == ["target.missed", "target.missed"]
    # Resolved once: recomputing does not resolve it again.
    assert _recompute(session, settings).resolved == []
    assert len(_deliveries(session, "target.missed.resolved")) == 1


def test_a_corrected_or_deleted_target_resolves_the_miss(session, settings, factory, team):
    factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    _target(session, team["Cy"].id, "2026-10").value = 1_500
    session.delete(_target(session, team["Bob"].id, "2026-10"))
    session.flush()
    result = _recompute(session, settings)
    assert len(result.resolved) == 2
    cy = _alert(session, "target.missed", rep_id=team["Cy"].id)
    assert (cy.state, cy.resolved_reason) == ("resolved", "condition_cleared")
    assert cy.current["target"] == pytest.approx(1_500)
    # Bob's row is gone with the target: resolved, with the last figures known.
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert (bob.state, bob.resolved_reason) == ("resolved", "subject_gone")
    assert bob.current["actual"] == pytest.approx(3_000)


def test_a_resolved_alert_reopens_when_its_condition_returns(session, settings, factory, team):
    factory.alert_rule("target.missed")
    factory.webhook(settings, "https://hooks.example.com/all")
    alerting.evaluate(session=session, settings=settings)
    target = _target(session, team["Bob"].id, "2026-10")
    target.value = 2_000
    session.flush()
    _recompute(session, settings)
    assert _alert(session, "target.missed", rep_id=team["Bob"].id).state == "resolved"
    target.value = 12_000
    session.flush()
    result = _recompute(session, settings)
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert [a.id for a in result.updated] == [bob.id] and result.alerts == []
    assert (bob.state, bob.resolved_at, bob.resolved_reason) == ("open", None, None)
    assert bob.current["target"] == pytest.approx(12_000)
    (update,) = _deliveries(session, "target.missed.updated")
    data = json.loads(update.body)["data"]
    assert data["reopened"] is True and data["previous"]["target"] == pytest.approx(2_000)
    ids = [d.message_id for d in session.scalars(select(WebhookDelivery))]
    assert len(ids) == len(set(ids))


def test_team_wide_gap_follows_the_team(session, settings, factory, team):
    """The issue's case: the alert said what the team was when raised, not what it is now."""
    factory.alert_rule("team.wide_gap")
    factory.webhook(settings, "https://hooks.example.com/all", event_types=["*.updated"])
    alerting.evaluate(session=session, settings=settings)
    north = team["team"].id
    gap = _alert(session, "team.wide_gap", team_id=north)
    assert gap.data["reps_below_target"] == 2

    factory.won(team["Cy"], 1_000, date(2026, 10, 28))  # still 2 of 3 below, more won
    _recompute(session, settings)
    gap = _alert(session, "team.wide_gap", team_id=north)
    assert gap.state == "open" and gap.revision == 1
    assert gap.current["actual"] == pytest.approx(18_000)
    assert gap.current["reps_below_target"] == 2
    assert "2 of 3 reps in North" in gap.current_summary
    assert len(_deliveries(session, "team.wide_gap.updated")) == 1

    factory.won(team["Bob"], 7_000, date(2026, 10, 28))  # 1 of 3 below: no team-wide gap
    result = _recompute(session, settings)
    gap = _alert(session, "team.wide_gap", team_id=north)
    assert [a.id for a in result.resolved] == [gap.id]
    assert gap.state == "resolved" and gap.current["reps_below_target"] == 1
    assert "1 of 3 reps in North" in gap.current_summary
    # Subscribed to *.updated only: the resolution went nowhere.
    assert _deliveries(session, "team.wide_gap.resolved") == []


def test_at_risk_is_resolved_when_the_period_closes(session, settings, factory, team):
    factory.alert_rule("target.at_risk")
    factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    bob = _alert(session, "target.at_risk", rep_id=team["Bob"].id, period="2026-11")
    assert bob.state == "open"
    result = _recompute(session, settings, as_of=date(2026, 12, 2))
    bob = _alert(session, "target.at_risk", rep_id=team["Bob"].id, period="2026-11")
    assert bob.state == "resolved" and bob.current["status"] == "missed"
    assert bob.resolved_reason == "period_closed"
    assert bob in result.resolved
    missed = _alert(session, "target.missed", rep_id=team["Bob"].id, period="2026-11")
    assert missed.state == "open" and missed in result.alerts


def test_at_risk_caught_up_is_cleared(session, settings, factory, team):
    factory.alert_rule("target.at_risk")
    alerting.evaluate(session=session, settings=settings)
    factory.won(team["Bob"], 5_000, date(2026, 11, 10))  # 6,000 by day 15: ahead of pace
    result = _recompute(session, settings)
    bob = _alert(session, "target.at_risk", rep_id=team["Bob"].id, period="2026-11")
    assert [a.id for a in result.resolved] == [bob.id]
    assert (bob.resolved_reason, bob.current["status"]) == ("condition_cleared", "on_track")
    assert "is back on pace for the 2026-11 won_revenue target" in bob.current_summary


def test_pace_drift_alone_is_not_an_update(session, settings, factory, team):
    """Expected-to-date grows every day; only the figures the alert is about count."""
    factory.alert_rule("target.at_risk")
    alerting.evaluate(session=session, settings=settings)
    result = _recompute(session, settings, as_of=date(2026, 11, 18))
    assert result.updated == []
    bob = _alert(session, "target.at_risk", rep_id=team["Bob"].id, period="2026-11")
    assert bob.revision == 0 and bob.state == "open"
    # The current figures are still the latest: the pace as of the 18th.
    assert bob.current["expected_to_date"] > bob.data["expected_to_date"]


def test_alerts_outside_the_lookback_are_left_alone(session, settings, factory, team):
    factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    # Bob makes October good, but the compute is in January: October is out of the window
    # (lookback 1: January and December), so its alert is not judged again.
    factory.won(team["Bob"], 8_000, date(2026, 10, 28))
    result = _recompute(session, settings, as_of=date(2027, 1, 5))
    assert result.resolved == [] and result.updated == []
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    assert bob.state == "open" and bob.revision == 0


def test_a_disabled_rule_leaves_its_alerts_alone(session, settings, factory, team):
    rule = factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    rule.is_enabled = False
    session.flush()
    factory.won(team["Bob"], 8_000, date(2026, 10, 28))
    _recompute(session, settings)
    assert _alert(session, "target.missed", rep_id=team["Bob"].id).state == "open"


def test_a_big_win_is_resolved_only_when_the_deal_is_no_longer_won(
    session, settings, factory, team
):
    factory.alert_rule("deal.big_win", params={"min_amount": 100_000})
    big = factory.won(team["Ann"], 150_000, date(2026, 11, 5))
    _recompute(session, settings)
    win = _alert(session, "deal.big_win", period="2026-11")
    big.amount = 120_000
    session.flush()
    result = _recompute(session, settings)
    assert [a.id for a in result.updated] == [win.id]
    assert _alert(session, "deal.big_win", period="2026-11").current["amount"] == 120_000
    big.status, big.stage = "lost", "Closed Lost"
    session.flush()
    result = _recompute(session, settings)
    win = _alert(session, "deal.big_win", period="2026-11")
    assert [a.id for a in result.resolved] == [win.id] and win.state == "resolved"


def test_hygiene_counts_update_then_resolve(session, settings, factory, team):
    factory.alert_rule("crm.hygiene", params={"stale_deals": 5})
    deals = [
        factory.deal(
            rep_id=team["Cy"].id,
            external_id=f"stale-{i}",
            status="open",
            stage="Proposal",
            amount=5_000,
            created_at=datetime(2026, 6, 1, tzinfo=UTC),
            close_date=date(2026, 12, 20),
            closed_at=None,
        )
        for i in range(7)
    ]
    _recompute(session, settings)
    alert = _alert(session, "crm.hygiene", rep_id=team["Cy"].id, period="2026-11")
    assert alert.data["stale_deals"] == 7
    deals[0].is_deleted = True  # deleted in the CRM
    session.flush()
    _recompute(session, settings)
    alert = _alert(session, "crm.hygiene", rep_id=team["Cy"].id, period="2026-11")
    assert (alert.state, alert.revision, alert.current["stale_deals"]) == ("open", 1, 6)
    for deal in deals[1:3]:
        deal.is_deleted = True
    session.flush()
    _recompute(session, settings)
    alert = _alert(session, "crm.hygiene", rep_id=team["Cy"].id, period="2026-11")
    assert alert.state == "resolved" and alert.current["stale_deals"] == 4


def test_the_api_shows_the_lifecycle_and_filters_on_state(client, session, settings, factory, team):
    factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    factory.won(team["Bob"], 8_000, date(2026, 10, 28))  # Bob's miss made good
    factory.won(team["Cy"], 1_000, date(2026, 10, 28))  # Cy's smaller
    _recompute(session, settings)
    bob = _alert(session, "target.missed", rep_id=team["Bob"].id)
    cy = _alert(session, "target.missed", rep_id=team["Cy"].id)
    admin = factory.key("admin")

    items = client.get("/api/v1/alerts", headers=admin).json()["items"]
    shown = {i["id"]: i for i in items}
    assert shown[bob.id]["state"] == "resolved"
    assert shown[bob.id]["resolved_reason"] == "condition_cleared"
    assert shown[bob.id]["resolved_at"] and shown[bob.id]["current"]["actual"] == 11_000
    assert shown[bob.id]["data"]["actual"] == 3_000
    assert shown[cy.id]["state"] == "open" and shown[cy.id]["revision"] == 1
    assert shown[cy.id]["updated_at"] and shown[cy.id]["current"]["actual"] == 3_000
    assert "3,000 of 10,000" in shown[cy.id]["current_summary"]

    resolved = client.get("/api/v1/alerts", params={"state": "resolved"}, headers=admin)
    assert [i["id"] for i in resolved.json()["items"]] == [bob.id]
    still = client.get("/api/v1/alerts", params={"state": "open"}, headers=admin)
    assert [i["id"] for i in still.json()["items"]] == [cy.id]
    bad = client.get("/api/v1/alerts", params={"state": "superseded"}, headers=admin)
    assert bad.status_code == 422
    assert "query.state" in [d["field"] for d in bad.json()["error"]["details"]]
    one = client.get(f"/api/v1/alerts/{bob.id}", headers=admin).json()
    assert one["state"] == "resolved" and one["current_summary"] == bob.current_summary
    types = client.get("/api/v1/alerts/event-types", headers=admin).json()["items"]
    assert {"target.missed.updated", "team.wide_gap.resolved"} <= set(types)
