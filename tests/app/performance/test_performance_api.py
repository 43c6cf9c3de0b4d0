"""The compute job and the performance API on demo data, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.deals.models import Deal
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute
from app.performance.models import PerformanceRow, Snapshot
from app.reps.models import Rep
from connectors.base import DEAL_FIELDS

TODAY = date(2026, 11, 18)


@pytest.fixture
def demo(session, settings):
    load_demo(
        session=session, config=DemoConfig(seed=3, today=TODAY, teams=2, reps_per_team=5, months=15)
    )
    snap = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    session.flush()
    return snap


def _get(client, url, headers, **params):
    r = client.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_full_compute_writes_a_snapshot_with_every_period(demo, session):
    assert demo.status == "complete" and demo.kind == "full"
    assert {"2026-11", "2026-Q4", "FY2026", "2025-09"} <= set(demo.periods)
    assert session.scalar(select(func.count()).select_from(PerformanceRow)) > 100


def test_performance_rows_trace_to_their_records(client, factory, demo):
    h = factory.key("analyst")
    page = _get(client, "/api/v1/performance", h, period="2026-10", metric="won_revenue")
    assert page["snapshot"]["id"] == demo.id
    rows = page["items"]
    assert rows and all(
        r["period"] == "2026-10" and r["status"] in ("achieved", "missed") for r in rows
    )
    row = max(rows, key=lambda r: r["actual"])
    # the records link lists exactly the deals summed into `actual` (USD reporting currency)
    deals = _get(
        client,
        row["records"].split("?")[0],
        h,
        **dict(p.split("=") for p in row["records"].split("?")[1].split("&")),
        status="won",
        limit=500,
    )["items"]
    rates = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66}
    assert sum(d["amount"] * rates[d["currency"]] for d in deals) == pytest.approx(row["actual"])
    assert row["inputs"]["won_deals"] == len(deals)
    assert row["gap"] == pytest.approx(row["target"] - row["actual"])
    assert row["attainment"] == pytest.approx(row["actual"] / row["target"])
    assert row["rank_in_company"] == 1 and row["percentile_in_company"] == 100.0


def test_current_period_is_paced(client, factory, demo):
    h = factory.key("viewer")
    rows = _get(client, "/api/v1/performance", h, period="2026-11", metric="won_revenue")["items"]
    assert rows
    for r in rows:
        assert r["elapsed_fraction"] == pytest.approx(18 / 30)
        assert r["expected_to_date"] == pytest.approx(r["target"] * 18 / 30)
        assert r["pace_gap"] == pytest.approx(r["actual"] - r["expected_to_date"])
        assert r["status"] in ("achieved", "on_track", "at_risk")
        assert r["projected_with_pipeline"] >= r["actual"]


def test_sort_filter_and_pagination_stay_on_one_snapshot(client, factory, demo, session, settings):
    h = factory.key("analyst")
    first = _get(client, "/api/v1/performance", h, period="2026-10", sort="-attainment", limit=3)
    att = [r["attainment"] for r in first["items"]]
    assert att == sorted(att, reverse=True)
    # a recompute between pages does not mix snapshots into one listing
    session.execute(update(Deal).values(amount=Deal.amount * 2))
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    second = _get(
        client,
        "/api/v1/performance",
        h,
        period="2026-10",
        sort="-attainment",
        limit=3,
        cursor=first["next_cursor"],
    )
    assert {r["snapshot"] for r in second["items"]} <= {demo.id}
    assert second["snapshot"]["id"] == demo.id
    r = client.get("/api/v1/performance", params={"sort": "shoe_size"}, headers=h)
    # An enum now: the 422 names the parameter and lists every valid value.
    detail = r.json()["error"]["details"][0]
    assert r.status_code == 422 and detail["field"] == "query.sort"
    assert "'-attainment'" in detail["message"] and "'rep_name'" in detail["message"]


def test_incremental_recompute_touches_only_changed_periods(
    client, factory, demo, session, settings
):
    from app.pipeline import ingest

    h = factory.key("analyst")
    before = _get(client, "/api/v1/performance", h, period="2026-03", metric="won_revenue")
    rep_row = max(before["items"], key=lambda r: r["actual"])
    deal = session.scalar(
        select(Deal).where(
            Deal.rep_id == rep_row["rep_id"],
            Deal.status == "won",
            Deal.close_date >= date(2026, 3, 1),
            Deal.close_date <= date(2026, 3, 31),
        )
    )
    record = {c: getattr(deal, c) for c in (*DEAL_FIELDS, "rep_id")}
    record["is_deleted"] = True  # a deleted deal stops counting
    ingest.upsert_records(session, Deal, deal.source_id, [record])
    snap = compute.run(session=session, settings=settings, as_of=TODAY)
    assert snap.kind == "incremental"
    assert "2026-03" in snap.periods and "2025-12" not in snap.periods
    after = _get(
        client,
        "/api/v1/performance",
        h,
        period="2026-03",
        metric="won_revenue",
        limit=500,
    )
    new = next(r for r in after["items"] if r["rep_id"] == rep_row["rep_id"])
    rate = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66}[deal.currency]
    assert new["actual"] == pytest.approx(rep_row["actual"] - deal.amount * rate)
    assert new["snapshot"] == snap.id
    # unchanged rows keep the version they were written in
    untouched = _get(client, "/api/v1/performance", h, period="2025-12")["items"]
    assert {r["snapshot"] for r in untouched} == {demo.id}
    # the old figure is still readable at the old snapshot's date
    session.execute(
        update(Snapshot)
        .where(Snapshot.id == snap.id)
        .values(computed_at=datetime.now(UTC) + timedelta(days=3))
    )
    old = _get(
        client,
        "/api/v1/performance",
        h,
        period="2026-03",
        metric="won_revenue",
        computed_on=str(date.today()),
    )
    old_row = next(r for r in old["items"] if r["rep_id"] == rep_row["rep_id"])
    assert old_row["actual"] == pytest.approx(rep_row["actual"])


def test_rerunning_with_no_change_writes_nothing(demo, session, settings):
    again = compute.run(session=session, settings=settings, as_of=TODAY)
    assert again.rows_written == 0


def test_coaching_explains_each_focus(client, factory, demo, session):
    h = factory.key(
        "manager", rep_id=session.scalar(select(Rep.id).where(Rep.manager_id.is_(None)))
    )
    reps = _get(client, "/api/v1/reps", h, role="rep", is_active="true", limit=500)["items"]
    answers = [_get(client, f"/api/v1/reps/{r['id']}/coaching", h, period="2026-10") for r in reps]
    assert all(a["period"] == "2026-10" and "drivers" in a for a in answers)
    focused = [a for a in answers if a["coaching_focus"]]
    assert all(a["focus_reason"] for a in focused)
    r = client.get(
        f"/api/v1/reps/{reps[0]['id']}/coaching", params={"period": "2019-01"}, headers=h
    )
    assert r.status_code == 404


def test_leaderboard_orders_by_metric(client, factory, demo):
    board = _get(
        client, "/api/v1/leaderboard", factory.key("viewer"), period="2026-Q3", metric="won_revenue"
    )
    values = [e["value"] for e in board["items"]]
    assert values == sorted(values, reverse=True) and board["items"][0]["rank"] == 1
    cycle = _get(
        client,
        "/api/v1/leaderboard",
        factory.key("viewer"),
        period="2026-Q3",
        metric="sales_cycle_days",
    )
    days = [e["value"] for e in cycle["items"] if e["value"] is not None]
    assert days == sorted(days)  # shorter cycles rank first


def test_team_rollup_and_manager_scope(client, factory, demo, session):
    manager = session.scalar(select(Rep).where(Rep.role == "manager", Rep.manager_id.is_not(None)))
    team_id = manager.team_id
    h = factory.key("manager", rep_id=manager.id)
    team = _get(client, f"/api/v1/teams/{team_id}/performance", h, period="2026-10")
    won = next(x for x in team["rollup"] if x["metric"] == "won_revenue")
    rep_rows = [
        x for x in team["rows"] if x["metric"] == "won_revenue" and x["subject_type"] == "rep"
    ]
    assert won["reps_with_target"] == len(rep_rows)
    assert won["reps_below_target"] == sum(1 for x in rep_rows if x["attainment"] < 1)
    assert won["team_wide_gap"] == (won["share_below_target"] > 0.5 and len(rep_rows) >= 3)
    assert 0 <= won["company_variance_between_teams"] <= 1
    listed = _get(client, "/api/v1/performance", h, period="2026-10")["items"]
    assert listed and all(x["team_id"] == team_id for x in listed)
    other = session.scalar(select(Rep).where(Rep.role == "rep", Rep.team_id != team_id))
    r = client.get(f"/api/v1/reps/{other.id}/performance", headers=h)
    assert r.status_code == 404


def test_compute_endpoint_is_admin_only(client, factory, demo):
    h = factory.key("admin")
    r = client.post("/api/v1/compute", json={"full": False, "as_of": str(TODAY)}, headers=h)
    assert r.status_code == 202
    job = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=h).json()
    assert (job["kind"], job["status"], job["stage"]) == ("compute", "succeeded", "done")
    snap = client.get("/api/v1/snapshots", headers=h).json()["items"][0]
    assert snap["id"] == job["result"]["compute"]["snapshot"] and snap["kind"] == "incremental"
    assert client.post("/api/v1/compute", json={}, headers=factory.key("viewer")).status_code == 403


def test_trend_wins_and_hygiene(client, factory, demo, session):
    h = factory.key("analyst")
    rep = session.scalar(select(Rep).where(Rep.role == "rep", Rep.is_active.is_(True)))
    trend = _get(client, f"/api/v1/reps/{rep.id}/trend", h, metric="activities", end="2026-11")
    assert trend["last_period"] == "2026-11" and trend["first_period"] == "2026-06"
    assert len(trend["values"]) == 6 and trend["direction"] in ("up", "down", "flat")
    wins = _get(client, "/api/v1/wins", h, period="2026-Q3", min_amount=1)["items"]
    assert wins and all(w["amount"] >= 1 and w["reason"] for w in wins)
    amounts = [w["amount"] for w in wins]
    assert amounts == sorted(amounts, reverse=True)
    report = _get(client, "/api/v1/hygiene", h)
    assert report["items"] and all(
        r["past_due_deals"] <= r["open_deals"] and r["stale_deals"] <= r["open_deals"]
        for r in report["items"]
    )
    assert client.get("/api/v1/hygiene", headers=factory.key("viewer")).status_code == 403


def test_seasonal_and_working_day_pacing(client, factory, demo, session, settings):
    h = factory.key("analyst")
    for pacing in ("seasonal", "working_days"):
        tuned = settings.model_copy(update={"pacing": pacing})
        compute.run(session=session, settings=tuned, as_of=TODAY, full=True)
        rows = _get(client, "/api/v1/performance", h, period="2026-11", metric="won_revenue")[
            "items"
        ]
        used = {r["pacing"] for r in rows}
        assert used == {pacing}, used  # every team has enough history for a curve
        for r in rows:
            share = r["expected_to_date"] / r["target"]
            assert 0 < share < 1
            if pacing == "working_days":  # Nov 2-18 has 13 of November's 21 weekdays
                assert share == pytest.approx(13 / 21)


def test_persistent_underperformer_survives_incremental_recompute(
    client, factory, session, settings
):
    from app.pipeline import ingest

    rep = factory.rep(start_date=date(2025, 1, 1))
    source = factory.source()
    for month in ("2026-07", "2026-08", "2026-09", "2026-10", "2026-11"):
        factory.target(rep_id=rep.id, period=month, value=5_000)
    compute.run(session=session, settings=settings, as_of=date(2026, 11, 10), full=True)
    h = factory.key("analyst")

    def row(period):
        items = _get(client, "/api/v1/performance", h, period=period)["items"]
        return next(r for r in items if r["rep_id"] == rep.id)

    assert [row(p)["consecutive_misses"] for p in ("2026-07", "2026-09", "2026-10")] == [1, 3, 4]
    assert row("2026-11")["status"] == "at_risk" and row("2026-11")["consecutive_misses"] == 4
    assert row("2026-11")["persistent_underperformer"] is True
    # a late-logged September win breaks the run; only the touched periods are recomputed
    ingest.upsert_records(
        session,
        Deal,
        source.id,
        [
            {
                "external_id": "LATE",
                "rep_id": rep.id,
                "amount": 6000.0,
                "currency": "USD",
                "status": "won",
                "created_at": datetime(2026, 8, 1, tzinfo=UTC),
                "close_date": date(2026, 9, 20),
                "closed_at": datetime(2026, 9, 20, tzinfo=UTC),
                "is_deleted": False,
            }
        ],
    )
    snap = compute.run(session=session, settings=settings, as_of=date(2026, 11, 10))
    assert "2026-06" not in snap.periods and "2026-09" in snap.periods
    assert row("2026-09")["status"] == "achieved"
    assert [row(p)["consecutive_misses"] for p in ("2026-08", "2026-09", "2026-10", "2026-11")] == [
        2,
        0,
        1,
        1,
    ]
    assert row("2026-11")["persistent_underperformer"] is False
