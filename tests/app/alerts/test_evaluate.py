"""Alert rules on a hand-built team whose figures are known.

Team North (manager Mo) has reps Ann, Bob and Cy, each with a 10,000 won_revenue target
per month. As of 2026-11-15:

* October (closed): Ann won 12,000 (achieved), Bob 3,000 and Cy 2,000 (missed): two of three
  reps below target, a team-wide gap. Bob also missed August and September: three in a row.
* November (half gone): Ann 6,000 (pace 1.2), Bob 1,000 (pace 0.2), Cy nothing (pace 0).
* Ann closed a 150,000 deal in November; Cy has six open deals untouched for months.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from app.alerts import evaluate
from app.alerts.models import Alert
from app.performance import compute
from app.pipeline import alerting
from app.webhooks.models import WebhookDelivery

AS_OF = date(2026, 11, 15)


@pytest.fixture
def team(factory, session, settings):
    mo = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=mo.id)
    reps = {
        n: factory.rep(name=n, team_id=north.id, manager_id=mo.id) for n in ("Ann", "Bob", "Cy")
    }
    for month in ("2026-08", "2026-09", "2026-10", "2026-11"):
        for rep in reps.values():
            factory.target(rep_id=rep.id, period=month, value=10_000)
    factory.won(reps["Ann"], 12_000, date(2026, 10, 20))
    factory.won(reps["Bob"], 3_000, date(2026, 10, 20))
    factory.won(reps["Cy"], 2_000, date(2026, 10, 20))
    for month in (8, 9):
        factory.won(reps["Bob"], 1_000, date(2026, month, 10))
        factory.won(reps["Ann"], 11_000, date(2026, month, 10))
        factory.won(reps["Cy"], 11_000, date(2026, month, 10))
    factory.won(reps["Ann"], 6_000, date(2026, 11, 3))
    factory.won(reps["Bob"], 1_000, date(2026, 11, 3))
    for i in range(6):
        factory.deal(
            rep_id=reps["Cy"].id,
            external_id=f"stale-{i}",
            status="open",
            stage="Proposal",
            amount=5_000,
            created_at=datetime(2026, 6, 1, tzinfo=UTC),
            close_date=date(2026, 12, 20),
            closed_at=None,
        )
    # A big November win for Ann, after the pacing figures above were planned: it only
    # lifts her further above pace.
    big = factory.deal(
        rep_id=reps["Ann"].id,
        amount=150_000,
        created_at=datetime(2026, 10, 1, tzinfo=UTC),
        close_date=date(2026, 11, 5),
        closed_at=datetime(2026, 11, 5, tzinfo=UTC),
    )
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    return {"team": north, "manager": mo, "big": big, **reps}


def _alerts(session, event_type: str) -> list[Alert]:
    return list(
        session.scalars(select(Alert).where(Alert.event_type == event_type).order_by(Alert.id))
    )


def _subjects(alerts: list[Alert], team) -> set[tuple[str | None, str | None]]:
    names = {r.id: r.name for r in team.values() if hasattr(r, "email")}
    return {(names.get(a.rep_id), a.period) for a in alerts}


def test_missed_targets_name_the_reps_and_carry_the_numbers(session, settings, factory, team):
    factory.alert_rule("target.missed")
    result = alerting.evaluate(session=session, settings=settings)
    missed = _alerts(session, "target.missed")
    # Lookback 1: October closed; August and September are older than the lookback.
    assert _subjects(missed, team) == {("Bob", "2026-10"), ("Cy", "2026-10")}
    assert len(result.alerts) == 2
    bob = next(a for a in missed if a.rep_id == team["Bob"].id)
    assert bob.data["actual"] == pytest.approx(3_000)
    assert bob.data["target"] == pytest.approx(10_000)
    assert bob.data["gap"] == pytest.approx(7_000)
    assert bob.data["attainment"] == pytest.approx(0.3)
    assert bob.team_id == team["team"].id and bob.metric == "won_revenue"
    assert "3,000 of 10,000 (30%)" in bob.summary and "Bob" in bob.summary
    assert bob.data["links"]["coaching"] == f"/api/v1/reps/{bob.rep_id}/coaching?period=2026-10"
    assert bob.event_id.startswith("alrt_")


def test_rerunning_raises_nothing_new(session, settings, factory, team):
    for event_type in evaluate.RULES:
        factory.alert_rule(event_type)
    first = alerting.evaluate(session=session, settings=settings)
    assert len(first.alerts) >= 6
    for _ in range(3):
        compute.run(session=session, settings=settings, as_of=AS_OF)
        again = alerting.evaluate(session=session, settings=settings)
        assert again.alerts == [] and again.candidates == first.candidates
    assert session.scalar(select(func.count()).select_from(Alert)) == len(first.alerts)


def test_at_risk_then_missed_is_two_alerts(session, settings, factory, team):
    factory.alert_rule("target.at_risk", params={"pace_below": 0.8, "min_elapsed": 0.25})
    missed_rule = factory.alert_rule("target.missed")
    alerting.evaluate(session=session, settings=settings)
    at_risk = _alerts(session, "target.at_risk")
    assert _subjects(at_risk, team) == {("Bob", "2026-11"), ("Cy", "2026-11")}
    bob = next(a for a in at_risk if a.rep_id == team["Bob"].id)
    # 1,000 won by day 15 of 30: expected 5,000, pace 0.2.
    assert bob.data["pace_ratio"] == pytest.approx(0.2)
    assert bob.data["expected_to_date"] == pytest.approx(5_000)
    # November closes with no more wins: the same reps now miss it, a new alert each.
    compute.run(session=session, settings=settings, as_of=date(2026, 12, 2))
    alerting.evaluate(session=session, settings=settings)
    november = [a for a in _alerts(session, "target.missed") if a.period == "2026-11"]
    assert {a.rep_id for a in november} == {team["Bob"].id, team["Cy"].id}
    assert all(a.rule_id == missed_rule.id for a in november)
    assert {a.event_id for a in november}.isdisjoint({a.event_id for a in at_risk})


def test_at_risk_waits_for_enough_of_the_period(session, settings, factory, team):
    factory.alert_rule("target.at_risk", params={"min_elapsed": 0.6})
    assert alerting.evaluate(session=session, settings=settings).alerts == []


def test_persistent_underperformance_after_three_misses(session, settings, factory, team):
    factory.alert_rule("rep.persistent_underperformance")
    alerting.evaluate(session=session, settings=settings)
    (alert,) = _alerts(session, "rep.persistent_underperformance")
    assert (alert.rep_id, alert.period) == (team["Bob"].id, "2026-10")
    assert alert.data["consecutive_misses"] == 3
    assert "missed 3 periods in a row" in alert.summary


def test_persistent_threshold_is_configurable(session, settings, factory, team):
    factory.alert_rule("rep.persistent_underperformance", params={"consecutive_misses": 4})
    assert alerting.evaluate(session=session, settings=settings).alerts == []


def test_team_wide_gap_points_at_the_manager(session, settings, factory, team):
    factory.alert_rule("team.wide_gap")
    alerting.evaluate(session=session, settings=settings)
    alerts = _alerts(session, "team.wide_gap")
    october = [a for a in alerts if a.period == "2026-10"]
    assert len(october) == 1
    (alert,) = october
    assert (alert.subject_type, alert.team_id) == ("team", team["team"].id)
    assert alert.data["reps_below_target"] == 2 and alert.data["reps_with_target"] == 3
    assert alert.data["manager_name"] == "Mo"
    assert "2 of 3 reps in North" in alert.summary


def test_big_win_recognised(session, settings, factory, team):
    factory.alert_rule("deal.big_win", params={"min_amount": 100_000})
    alerting.evaluate(session=session, settings=settings)
    (alert,) = _alerts(session, "deal.big_win")
    assert (alert.subject_type, alert.subject_id) == ("deal", team["big"].id)
    assert alert.rep_id == team["Ann"].id and alert.period == "2026-11"
    assert alert.data["amount"] == pytest.approx(150_000)
    assert "150,000" in alert.summary


def test_hygiene_flags_stale_open_deals(session, settings, factory, team):
    factory.alert_rule("crm.hygiene", params={"stale_deals": 5})
    alerting.evaluate(session=session, settings=settings)
    (alert,) = _alerts(session, "crm.hygiene")
    assert alert.rep_id == team["Cy"].id and alert.data["stale_deals"] == 6
    assert alert.period == "2026-11"


def test_rules_scoped_to_other_teams_or_metrics_stay_quiet(session, settings, factory, team):
    other = factory.team(name="South")
    factory.alert_rule("target.missed", team_ids=[other.id])
    factory.alert_rule("target.missed", metrics=["calls"])
    factory.alert_rule("target.missed", is_enabled=False)
    assert alerting.evaluate(session=session, settings=settings).alerts == []
    scoped = factory.alert_rule("target.missed", team_ids=[team["team"].id])
    assert {a.rule_id for a in alerting.evaluate(session=session, settings=settings).alerts} == {
        scoped.id
    }


def test_alerts_and_their_deliveries_are_written_together(session, settings, factory, team):
    factory.alert_rule("target.missed")
    factory.alert_rule("deal.big_win", params={"min_amount": 100_000})
    endpoint, _ = factory.webhook(
        settings, "https://hooks.example.com/a", event_types=["target.missed"]
    )
    other_team = factory.team(name="West")
    factory.webhook(settings, "https://hooks.example.com/b", team_ids=[other_team.id])
    result = alerting.evaluate(session=session, settings=settings)
    deliveries = list(session.scalars(select(WebhookDelivery)))
    missed = _alerts(session, "target.missed")
    # Only the first endpoint wants target.missed; the second watches another team.
    assert result.deliveries == len(deliveries) == len(missed) == 2
    assert {d.message_id for d in deliveries} == {a.event_id for a in missed}
    assert all(d.endpoint_id == endpoint.id and d.status == "pending" for d in deliveries)


def test_no_snapshot_no_alerts(session, settings, factory):
    factory.alert_rule("target.missed")
    result = alerting.evaluate(session=session, settings=settings)
    assert (result.alerts, result.rules) == ([], 1)
