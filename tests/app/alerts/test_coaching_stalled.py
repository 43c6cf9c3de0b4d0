"""The rep.coaching_stalled rule on stored coaching rows written by hand.

As of 2026-10-20 (lookback 1: September and October are looked at). Team North: Ann has had
win rate named every month May to October at 0.40, 0.38, 0.41, 0.39, 0.42, 0.40 of the team's
(never 0.05 better than in May: stalled 5 months at September, 6 at October). Bob had
conversion named July to October at 0.30, 0.40, 0.50, 0.60: improving every month, never
stalled beyond one month. Team South's Zed had deal size named in September and October at
0.50 and 0.50: stalled 2 months.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select, update

from app.alerts.models import Alert
from app.performance.models import CoachingRow
from app.pipeline import alerting
from app.webhooks.models import WebhookDelivery

AS_OF = date(2026, 10, 20)
ANN = dict(
    zip(["05", "06", "07", "08", "09", "10"], [0.40, 0.38, 0.41, 0.39, 0.42, 0.40], strict=True)
)
BOB = dict(zip(["07", "08", "09", "10"], [0.30, 0.40, 0.50, 0.60], strict=True))


@pytest.fixture
def team(factory):
    mo = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=mo.id)
    south = factory.team(name="South")
    ann = factory.rep(name="Ann", team_id=north.id, manager_id=mo.id)
    bob = factory.rep(name="Bob", team_id=north.id, manager_id=mo.id)
    zed = factory.rep(name="Zed", team_id=south.id)
    v = factory.snapshot(AS_OF).id
    for m, ratio in ANN.items():
        factory.coaching_row(ann, f"2026-{m}", "win_rate", version=v, win_rate_vs_team=ratio)
    for m, ratio in BOB.items():
        factory.coaching_row(
            bob,
            f"2026-{m}",
            "conversion",
            focus="opportunities",
            version=v,
            conversion_vs_team=ratio,
        )
    for m in ("09", "10"):
        factory.coaching_row(zed, f"2026-{m}", "deal_size", version=v, deal_size_vs_team=0.5)
    return {"north": north, "south": south, "Ann": ann, "Bob": bob, "Zed": zed, "version": v}


def _alerts(session) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert).where(Alert.event_type == "rep.coaching_stalled").order_by(Alert.period)
        )
    )


def _next_snapshot(factory, session, team, rep, period: str, **drivers) -> int:
    """A new snapshot in which ``rep``'s row of ``period`` is replaced by ``drivers``."""
    v = factory.snapshot(AS_OF).id
    session.execute(
        update(CoachingRow)
        .where(CoachingRow.rep_id == rep.id, CoachingRow.period == period)
        .values(valid_to=v)
    )
    focus = drivers.pop("focus_driver")
    factory.coaching_row(rep, period, focus, version=v, **drivers)
    return v


def test_fires_for_the_same_focus_named_without_improving(session, settings, factory, team):
    factory.alert_rule("rep.coaching_stalled", params={"periods": 3})
    endpoint, _ = factory.webhook(settings, "https://hooks.example.com/a")
    result = alerting.evaluate(session=session, settings=settings)
    alerts = _alerts(session)
    # Ann only: Bob improves, Zed has two months (fewer than 3).
    assert [(a.rep_id, a.period) for a in alerts] == [
        (team["Ann"].id, "2026-09"),
        (team["Ann"].id, "2026-10"),
    ]
    october = alerts[1]
    assert october.subject_type == "rep" and october.team_id == team["north"].id
    assert october.data["stalled_periods"] == 6 and october.data["stalled_since"] == "2026-05"
    assert october.data["focus_driver"] == "win_rate"
    assert october.data["vs_team"] == pytest.approx(0.40)
    assert october.data["periods_needed"] == 3
    assert october.data["links"]["record"] == (
        f"/api/v1/reps/{team['Ann'].id}/coaching/record?kind=month&end=2026-10"
    )
    assert october.summary.startswith(
        "Ann has had win rate named 6 months in a row without improving (since 2026-05): "
        "win rate since 2026-05: 0.40× → 0.38×"
    )
    # Raised through the outbox like every rule: one delivery each, signed later.
    deliveries = list(session.scalars(select(WebhookDelivery)))
    assert result.deliveries == len(deliveries) == 2
    assert {d.message_id for d in deliveries} == {a.event_id for a in alerts}
    assert all(d.endpoint_id == endpoint.id for d in deliveries)
    # Again: nothing new.
    assert alerting.evaluate(session=session, settings=settings).alerts == []


def test_the_threshold_is_the_rules(session, settings, factory, team):
    factory.alert_rule("rep.coaching_stalled", params={"periods": 6})
    alerting.evaluate(session=session, settings=settings)
    assert [(a.rep_id, a.period) for a in _alerts(session)] == [(team["Ann"].id, "2026-10")]


def test_quiet_below_the_threshold_and_outside_the_scope(session, settings, factory, team):
    factory.alert_rule("rep.coaching_stalled", params={"periods": 7})
    factory.alert_rule("rep.coaching_stalled", team_ids=[team["south"].id])
    factory.alert_rule("rep.coaching_stalled", period_kinds=["quarter"])
    assert alerting.evaluate(session=session, settings=settings).alerts == []
    # Two months are enough for Zed with periods 2 (and for Ann).
    factory.alert_rule("rep.coaching_stalled", params={"periods": 2}, team_ids=[team["south"].id])
    (zed,) = alerting.evaluate(session=session, settings=settings).alerts
    assert (zed.rep_id, zed.period, zed.data["stalled_periods"]) == (team["Zed"].id, "2026-10", 2)


def test_improvement_resolves_the_alert(session, settings, factory, team):
    factory.alert_rule("rep.coaching_stalled")
    factory.webhook(
        settings, "https://hooks.example.com/r", event_types=["rep.coaching_stalled.resolved"]
    )
    alerting.evaluate(session=session, settings=settings)
    september, october = _alerts(session)
    # October recomputed: win rate 0.50, 0.08 better than September's 0.42 and more than
    # that better than every month before: named one month without improving, not six.
    _next_snapshot(
        factory,
        session,
        team,
        team["Ann"],
        "2026-10",
        focus_driver="win_rate",
        win_rate_vs_team=0.50,
    )
    result = alerting.evaluate(session=session, settings=settings)
    assert [a.id for a in result.resolved] == [october.id]
    assert october.state == "resolved" and october.resolved_reason == "condition_cleared"
    assert october.current["stalled_periods"] == 1
    assert "no longer stalled in 2026-10" in october.current_summary
    assert september.state == "open"  # its own month did not change
    (delivery,) = session.scalars(select(WebhookDelivery)).all()
    body = json.loads(delivery.body)
    assert body["type"] == "rep.coaching_stalled.resolved"
    assert body["data"]["previous"]["stalled_periods"] == 6


def test_a_focus_no_longer_named_resolves_it(session, settings, factory, team):
    factory.alert_rule("rep.coaching_stalled")
    alerting.evaluate(session=session, settings=settings)
    _next_snapshot(factory, session, team, team["Ann"], "2026-10", focus_driver=None)
    alerting.evaluate(session=session, settings=settings)
    october = _alerts(session)[1]
    assert october.state == "resolved" and october.resolved_reason == "condition_cleared"
    assert october.current["focus_driver"] is None
    assert october.current_summary == "Ann has no coaching focus named in 2026-10 any more."


def test_the_rule_type_in_the_api(client, factory):
    h = factory.key("admin")
    made = client.post(
        "/api/v1/alert-rules",
        json={"name": "Stalled", "event_type": "rep.coaching_stalled", "params": {}},
        headers=h,
    )
    assert made.status_code == 201, made.text
    assert made.json()["params"] == {"periods": 3}
    for params in ({"periods": 0}, {"consecutive_misses": 3}):
        bad = client.post(
            "/api/v1/alert-rules",
            json={"name": "x", "event_type": "rep.coaching_stalled", "params": params},
            headers=h,
        )
        assert bad.status_code == 422, params
    types = client.get("/api/v1/alerts/event-types", headers=h).json()["items"]
    assert {"rep.coaching_stalled", "rep.coaching_stalled.resolved"} <= set(types)
