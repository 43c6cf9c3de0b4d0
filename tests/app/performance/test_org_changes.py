"""Changes other than records reach the figures: targets, reps, the team tree and the settings
the figures depend on mark the periods they move, and an incremental compute then gives what a
full compute gives, over every period a full compute covers (not only its own scope)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from app.deals.models import Deal
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute, versioning
from app.performance.models import DirtyDay, MetricRow, PerformanceRow, Snapshot
from app.pipeline import ingest
from app.reps import memberships
from app.reps.models import Rep, TeamMembership
from app.targets import service as targets_service
from app.targets.models import Target
from app.teams.models import Team
from connectors.base import DEAL_FIELDS
from tests.app.performance.test_incremental import _same, _visible

TODAY = date(2026, 11, 18)


def _demo(session: Any, **overrides: Any) -> None:
    config = {"seed": 11, "today": TODAY, "teams": 3, "reps_per_team": 3, "months": 15}
    load_demo(session=session, config=DemoConfig(**(config | overrides)))


def _assert_all_same_as_full(session: Any, settings: Any, inc: Snapshot) -> None:
    """Every period of a full compute's scope reads the same at the incremental version."""
    full = compute.run(session=session, settings=settings, as_of=inc.as_of, full=True)
    for model in versioning.VERSIONED:
        ours = _visible(session, model, inc.id, full.periods)
        theirs = _visible(session, model, full.id, full.periods)
        assert ours.keys() == theirs.keys(), model.__name__
        bad = [k for k in ours if not _same(ours[k], theirs[k])]
        assert not bad, (model.__name__, bad[:3], [(ours[k], theirs[k]) for k in bad[:1]])


def _row(session: Any, snapshot: Snapshot, target: Target) -> PerformanceRow | None:
    return session.scalar(
        select(PerformanceRow).where(
            versioning.visible(PerformanceRow, snapshot.id),
            PerformanceRow.subject_type == "rep",
            PerformanceRow.rep_id == target.rep_id,
            PerformanceRow.metric == target.metric,
            PerformanceRow.period == target.period,
        )
    )


def _target(session: Any, period: str, metric: str = "won_revenue") -> Target:
    return session.scalars(
        select(Target).where(Target.period == period, Target.metric == metric).order_by(Target.id)
    ).first()


def test_a_corrected_past_target_reaches_an_incremental_compute(session, settings):
    _demo(session)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    target = _target(session, "2026-03")
    target.value = float(target.value) * 2 + 100
    session.flush()
    assert {d.kind for d in session.scalars(select(DirtyDay))} == {"org"}

    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    assert inc.kind == "incremental" and "2026-03" in inc.periods
    row = _row(session, inc, target)
    assert row is not None and row.target == pytest.approx(target.value)
    assert inc.details["deals"] == 0  # computed again from the stored monthly figures
    _assert_all_same_as_full(session, settings, inc)


def test_bulk_targets_for_old_periods_and_a_deleted_one(session, settings):
    _demo(session)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    reps = session.scalars(select(Rep.id).where(Rep.role == "rep").order_by(Rep.id)).all()
    rows = [
        {"rep_id": r, "metric": "won_deals", "period": p, "value": 3.0}
        for r in reps[:2]
        for p in ("2025-12", "2026-Q1")
    ]
    targets_service.upsert_many(
        session=session,
        rows=targets_service.validate_rows(session=session, rows=rows, cal=settings.calendar),
    )
    gone = _target(session, "2026-02")
    session.delete(gone)
    session.flush()
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    new = _target(session, "2026-Q1", "won_deals")
    assert _row(session, inc, new) is not None
    assert _row(session, inc, gone) is None
    _assert_all_same_as_full(session, settings, inc)


def _move_team_under_another(session: Any, settings: Any) -> Any:
    teams = session.scalars(select(Team).order_by(Team.id)).all()
    teams[-1].parent_id = teams[0].id
    return settings


def _rep_starts_later(session: Any, settings: Any) -> Any:
    rep = session.scalars(select(Rep).where(Rep.role == "rep").order_by(Rep.id)).first()
    rep.start_date = date(2026, 2, 10)
    return settings


def _rep_changes_team(session: Any, settings: Any) -> Any:
    rep = session.scalars(select(Rep).where(Rep.role == "rep").order_by(Rep.id)).first()
    rep.team_id = session.scalars(select(Team.id).where(Team.id != rep.team_id)).first()
    return settings


def _rep_becomes_manager(session: Any, settings: Any) -> Any:
    rep = session.scalars(select(Rep).where(Rep.role == "rep").order_by(Rep.id)).first()
    rep.role = "manager"
    return settings


@pytest.mark.parametrize(
    "change",
    [
        _move_team_under_another,
        _rep_starts_later,
        _rep_changes_team,
        _rep_becomes_manager,
        lambda s, settings: settings.model_copy(update={"ramp_schedule": [0.5, 0.75]}),
        lambda s, settings: settings.model_copy(update={"pacing": "working_days"}),
        lambda s, settings: settings.model_copy(update={"status_on_track_min": 0.97}),
        lambda s, settings: settings.model_copy(update={"history_months": 30}),
    ],
    ids=[
        "team-tree",
        "start-date",
        "team-move",
        "role",
        "ramp",
        "pacing",
        "on-track-min",
        "history-months",
    ],
)
def test_org_and_settings_changes_reach_an_incremental_compute(session, settings, change):
    _demo(session, months=20)
    compute.run(
        session=session,
        settings=settings.model_copy(update={"history_months": 18}),
        as_of=TODAY,
        full=True,
    )
    tuned = change(session, settings.model_copy(update={"history_months": 18}))
    session.flush()
    inc = compute.run(session=session, settings=tuned, as_of=TODAY)
    assert inc.kind == "incremental"
    _assert_all_same_as_full(session, tuned, inc)


def test_a_start_date_moved_again_rewrites_the_periods_before_it(session, settings):
    """A period before the rep's start carries a target of 0 with the note "starts <date>,
    after the period": moving the start date changes that note in every such period, not only
    from the earlier of the two dates on (found by the property below)."""
    _demo(session, months=20)
    rep = session.scalars(select(Rep).where(Rep.role == "rep").order_by(Rep.id)).first()
    rep.start_date = date(2026, 6, 1)
    session.flush()
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    rep.start_date = date(2026, 6, 6)
    session.flush()
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    _assert_all_same_as_full(session, settings, inc)


def test_targets_before_the_horizon_are_computed(session, settings):
    _demo(session)
    short = settings.model_copy(update={"history_months": 6})
    old = _target(session, "2025-09")  # 14 months back: before a 6-month horizon
    for t in session.scalars(select(Target).where(Target.period == "2025-10")):
        session.delete(t)
    session.flush()
    compute.run(session=session, settings=short, as_of=TODAY, full=True)  # takes the marks
    full = compute.run(session=session, settings=short, as_of=TODAY, full=True)
    assert {"2025-09", "2025-Q3", "FY2025"} <= set(full.periods)
    assert "2025-10" not in full.periods  # a month without a target stays out
    row = _row(session, full, old)
    assert row is not None and row.target == pytest.approx(old.value)
    # The same figure a compute reaching that far back gives.
    wide = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    assert _row(session, wide, old).actual == pytest.approx(row.actual)

    # Corrected and then deleted, each reaches an incremental compute at the short horizon.
    compute.run(session=session, settings=short, as_of=TODAY, full=True)
    old.value = float(old.value) + 1000
    session.flush()
    inc = compute.run(session=session, settings=short, as_of=TODAY)
    assert _row(session, inc, old).target == pytest.approx(old.value)
    session.delete(old)
    session.flush()
    inc = compute.run(session=session, settings=short, as_of=TODAY)
    assert _row(session, inc, old) is None
    _assert_all_same_as_full(session, short, inc)


def test_a_patched_target_reaches_the_api_after_a_normal_compute(client, factory, session):
    _demo(session)
    h = factory.key("admin")
    assert client.post("/api/v1/compute", json={"full": True}, headers=h).status_code == 202
    target = _target(session, "2026-04")
    r = client.patch(f"/api/v1/targets/{target.id}", json={"value": 123456}, headers=h)
    assert r.status_code == 200, r.text
    assert client.post("/api/v1/compute", json={}, headers=h).status_code == 202
    rows = client.get(
        "/api/v1/performance",
        params={"period": "2026-04", "metric": "won_revenue", "limit": 500},
        headers=h,
    ).json()["items"]
    mine = [r for r in rows if r["rep_id"] == target.rep_id]
    assert mine and mine[0]["target"] == 123456


# ------------------------------------------------------------------ the property


def _deal_edit(session: Any, pick: int, factor: float, days: int) -> None:
    deals = session.scalars(select(Deal).where(Deal.status == "won").order_by(Deal.id)).all()
    deal = deals[pick % len(deals)]
    record = {f: getattr(deal, f) for f in (*DEAL_FIELDS, "rep_id", "is_deleted")}
    record["amount"] = float(deal.amount or 0) * factor
    if deal.close_date is not None:
        record["close_date"] = deal.close_date + timedelta(days=days)
    if deal.closed_at is not None:
        record["closed_at"] = deal.closed_at + timedelta(days=days)
    ingest.upsert_records(session, Deal, deal.source_id, [record])


def _target_edit(session: Any, pick: int, factor: float, days: int) -> None:
    targets = session.scalars(select(Target).order_by(Target.id)).all()
    target = targets[pick % len(targets)]
    if factor < 0.7:
        session.delete(target)
    else:
        target.value = round(float(target.value) * factor, 2)


def _rep_edit(session: Any, pick: int, factor: float, days: int) -> None:
    reps = session.scalars(select(Rep).where(Rep.role == "rep").order_by(Rep.id)).all()
    rep = reps[pick % len(reps)]
    if factor < 1:
        rep.start_date = date(2026, 6, 1) + timedelta(days=days)
    else:  # a dated move, inside a month
        teams = session.scalars(select(Team.id).order_by(Team.id)).all()
        new_team = teams[(teams.index(rep.team_id) + 1) % len(teams)]
        effective = date(2026, 6, 11) + timedelta(days=days)
        memberships.move(
            session=session, rep=rep, team_id=new_team, effective=effective, today=TODAY
        )


def _team_edit(session: Any, pick: int, factor: float, days: int) -> None:
    teams = session.scalars(select(Team).order_by(Team.id)).all()
    child = teams[1 + pick % (len(teams) - 1)]
    # A parent listed before the child: the tree stays a tree.
    child.parent_id = None if factor < 1 else teams[pick % teams.index(child)].id


EDITS = {"deal": _deal_edit, "target": _target_edit, "rep": _rep_edit, "team": _team_edit}
STEP = st.tuples(
    st.sampled_from(sorted(EDITS)),
    st.integers(0, 500),
    st.sampled_from([0.5, 0.9, 1.3]),
    st.integers(-40, 40),
)


def test_any_sequence_of_changes_then_incremental_equals_full(session, settings):
    _demo(session, teams=3, reps_per_team=2, months=15)
    teams = session.scalars(select(Team).order_by(Team.id)).all()
    assert all(t.parent_id is None or t.parent_id < t.id for t in teams)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)

    @hsettings(
        max_examples=6,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(steps=st.lists(STEP, min_size=1, max_size=3))
    def check(steps: list[tuple[str, int, float, int]]) -> None:
        example = session.begin_nested()
        try:
            for kind, pick, factor, days in steps:
                EDITS[kind](session, pick, factor, days)
                session.flush()
                inc = compute.run(session=session, settings=settings, as_of=TODAY)
                probe = session.begin_nested()  # the full compute must not feed the next step
                try:
                    _assert_all_same_as_full(session, settings, inc)
                finally:
                    probe.rollback()
        finally:
            example.rollback()

    check()


# ------------------------------------------------------------------ team moves


def _figure(session: Any, snapshot: Snapshot, subject: str, subject_id: int, period: str) -> dict:
    row = session.scalar(
        select(MetricRow).where(
            versioning.visible(MetricRow, snapshot.id),
            MetricRow.subject_type == subject,
            MetricRow.subject_id == subject_id,
            MetricRow.period == period,
        )
    )
    return dict(row.values) if row is not None else {}


def _team_figure(session: Any, snapshot: Snapshot, team_id: int, period: str) -> dict:
    return _figure(session, snapshot, "team", team_id, period)


def _rep_figure(session: Any, snapshot: Snapshot, rep_id: int, period: str) -> dict:
    return _figure(session, snapshot, "rep", rep_id, period)


def test_a_team_move_keeps_the_periods_before_it(client, factory, session, settings):
    _demo(session, teams=2, reps_per_team=3)
    h = factory.key("admin")
    first = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    rep = session.scalars(
        select(Rep).where(Rep.role == "rep", Rep.team_id.is_not(None)).order_by(Rep.id)
    ).first()
    # Another team with reps of its own (not the region above both).
    old = rep.team_id
    new = session.scalar(select(Rep.team_id).where(Rep.role == "rep", Rep.team_id != old))
    before = {p: _team_figure(session, first, old, p) for p in ("2026-05", "2026-Q2", "2026-09")}
    rollup_before = client.get(f"/api/v1/teams/{old}/performance?period=2026-08", headers=h).json()
    assert rollup_before["rollup"]

    r = client.patch(
        f"/api/v1/reps/{rep.id}",
        json={"team_id": new, "effective_date": "2026-09-16"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["team_id"] == new
    session.expire_all()
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    assert "2026-05" not in inc.periods  # before the move: not even computed again
    assert _team_figure(session, inc, old, "2026-05") == before["2026-05"]
    assert _team_figure(session, inc, old, "2026-Q2") == before["2026-Q2"]
    # September is split by days: 15 of 30 on the old team, 15 on the new one.
    mine = _rep_figure(session, inc, rep.id, "2026-09")["won_revenue"]
    sept_old = _team_figure(session, inc, old, "2026-09")["won_revenue"]
    assert sept_old == pytest.approx(before["2026-09"]["won_revenue"] - mine / 2)
    # October: wholly the new team's.
    others = sum(
        _rep_figure(session, inc, r, "2026-10").get("won_revenue", 0.0)
        for r in session.scalars(select(Rep.id).where(Rep.team_id == new, Rep.role == "rep"))
    )
    assert _team_figure(session, inc, new, "2026-10")["won_revenue"] == pytest.approx(others)
    # The team's past rollup (reps below target, team-wide gap) still counts the rep...
    rollup = client.get(f"/api/v1/teams/{old}/performance?period=2026-08", headers=h).json()
    assert rollup["rollup"] == rollup_before["rollup"]
    august = client.get(
        "/api/v1/performance",
        params={"period": "2026-08", "metric": "won_revenue", "team_id": old},
        headers=h,
    ).json()["items"]
    assert rep.id in {i["rep_id"] for i in august}
    # ...and the new team's current one does.
    now = client.get(
        "/api/v1/performance",
        params={"period": "2026-11", "metric": "won_revenue", "team_id": new},
        headers=h,
    ).json()["items"]
    assert rep.id in {i["rep_id"] for i in now}
    _assert_all_same_as_full(session, settings, inc)


def test_a_team_move_defaults_to_today_and_refuses_the_future(client, factory, session, settings):
    rep = factory.rep(name="Mo", email="mo@example.com")
    a = factory.team(name="A")
    b = factory.team(name="B")
    h = factory.key("admin")
    today = settings.today()
    week_ago = (today - timedelta(days=7)).isoformat()
    body = {"team_id": a.id, "effective_date": week_ago}
    assert client.patch(f"/api/v1/reps/{rep.id}", json=body, headers=h).is_success
    assert client.patch(f"/api/v1/reps/{rep.id}", json={"team_id": b.id}, headers=h).is_success
    spans = session.scalars(select(TeamMembership).order_by(TeamMembership.id)).all()
    assert [(s.team_id, str(s.valid_from), s.valid_to) for s in spans] == [
        (a.id, week_ago, today),
        (b.id, str(today), None),
    ]
    future = (today + timedelta(days=3)).isoformat()
    r = client.patch(
        f"/api/v1/reps/{rep.id}", json={"team_id": a.id, "effective_date": future}, headers=h
    )
    assert r.status_code == 422
    assert "effective_date" in r.text
