"""GET /api/v1/reps/{id}/coaching/record on stored coaching rows written by hand, on SQLite
and PostgreSQL.

Team North (manager Mo): Ann has had win rate named every month May to October 2026 at
0.40, 0.38, 0.41, 0.39, 0.42, 0.40 of the team's: never 0.05 better than in May, so six months
named without improving. Bob had conversion ("opportunities") named in July (0.50) and August
(0.58); by September it was 0.70 and nothing was named after. Team South's Zed had win rate
named in October.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from analytics.periods import period_of, shift

ANN = [0.40, 0.38, 0.41, 0.39, 0.42, 0.40]
MONTHS = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]


@pytest.fixture
def world(factory):
    mo = factory.rep(name="Mo", role="manager")
    north = factory.team(name="North", manager_id=mo.id)
    south = factory.team(name="South")
    ann = factory.rep(name="Ann", team_id=north.id, manager_id=mo.id)
    bob = factory.rep(name="Bob", team_id=north.id, manager_id=mo.id)
    zed = factory.rep(name="Zed", team_id=south.id)
    v = factory.snapshot(date(2026, 10, 20)).id
    for month, ratio in zip(MONTHS, ANN, strict=True):
        factory.coaching_row(
            ann, month, "win_rate", version=v, win_rate_vs_team=ratio, conversion_vs_team=1.0
        )
    bob_months = {"2026-07": 0.50, "2026-08": 0.58, "2026-09": 0.70, "2026-10": 0.90}
    for month, ratio in bob_months.items():
        named = "conversion" if month in ("2026-07", "2026-08") else None
        factory.coaching_row(
            bob,
            month,
            named,
            focus="opportunities",
            version=v,
            conversion_vs_team=ratio,
            win_rate_vs_team=1.0,
        )
    factory.coaching_row(zed, "2026-10", "win_rate", version=v, win_rate_vs_team=0.3)
    # A quarter row: another period kind, not mixed into the months.
    factory.coaching_row(ann, "2026-Q3", "deal_size", version=v, deal_size_vs_team=0.5)
    return {"mo": mo, "ann": ann, "bob": bob, "zed": zed, "version": v}


def _record(client, rep, headers, **params):
    r = client.get(f"/api/v1/reps/{rep.id}/coaching/record", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_focus_named_and_how_its_driver_moved(client, factory, world):
    h = factory.key("analyst")
    body = _record(client, world["ann"], h, end="2026-10", periods=6)
    assert (body["first_period"], body["last_period"], body["period_kind"]) == (
        "2026-05",
        "2026-10",
        "month",
    )
    assert body["snapshot"] == world["version"] and body["reason"] is None
    assert [i["period"] for i in body["items"]] == MONTHS
    may = body["items"][0]
    assert (may["coaching_focus"], may["focus_driver"]) == ("win_rate", "win_rate")
    assert may["vs_team_then"] == pytest.approx(0.40)
    assert [(p["period"], p["vs_team"]) for p in may["followed_by"]] == [
        ("2026-06", pytest.approx(0.38)),
        ("2026-07", pytest.approx(0.41)),
        ("2026-08", pytest.approx(0.39)),
    ]
    assert may["change"] == pytest.approx(-0.01) and may["verdict"] == "not_improving"
    assert may["summary"] == (
        "win rate named in 2026-05; win rate 0.40× team in 2026-05, 0.38× in 2026-06, "
        "0.41× in 2026-07, 0.39× in 2026-08: not improving"
    )
    # October is the last month read: nothing followed it yet.
    assert body["items"][-1]["followed_by"] == [] and body["items"][-1]["verdict"] == "too_early"
    run = body["current_run"]
    assert (run["period"], run["since"], run["periods"]) == ("2026-10", "2026-05", 6)
    assert (run["stalled_periods"], run["stalled_since"]) == (6, "2026-05")
    assert [p["vs_team"] for p in run["points"]] == pytest.approx(ANN)
    assert run["verdict"] == "not_improving"
    assert run["summary"] == (
        "win rate since 2026-05: 0.40× → 0.38× → 0.41× → 0.39× → 0.42× → 0.40×, not improving "
        "over the last 3 months"
    )


def test_improvement_resolves_and_no_focus_means_no_run(client, factory, world):
    body = _record(client, world["bob"], factory.key("admin"), end="2026-10")
    july, august = body["items"]
    assert (july["period"], july["coaching_focus"]) == ("2026-07", "opportunities")
    # 0.50 → 0.58 → 0.70 → 0.90: no longer materially below the team.
    assert july["verdict"] == "resolved" and july["change"] == pytest.approx(0.40)
    assert [p["period"] for p in july["followed_by"]] == ["2026-08", "2026-09", "2026-10"]
    assert august["verdict"] == "resolved"
    assert body["current_run"] is None


def test_window_end_and_horizon(client, factory, world):
    h = factory.key("admin")
    # Two periods listed; the run still counts from May (earlier months are read).
    two = _record(client, world["ann"], h, end="2026-10", periods=2)
    assert [i["period"] for i in two["items"]] == ["2026-09", "2026-10"]
    assert two["current_run"]["since"] == "2026-05"
    # As it stood in August: later months are not read.
    august = _record(client, world["ann"], h, end="2026-08", periods=12)
    assert august["items"][-1]["period"] == "2026-08"
    assert august["items"][-1]["followed_by"] == []
    assert august["items"][0]["followed_by"][-1]["period"] == "2026-08"
    assert august["current_run"]["periods"] == 4
    short = _record(client, world["ann"], h, end="2026-10", horizon=1)
    assert [len(i["followed_by"]) for i in short["items"]] == [1, 1, 1, 1, 1, 0]
    # A quarter: its own rows only.
    quarter = _record(client, world["ann"], h, end="2026-Q3", periods=4)
    assert quarter["period_kind"] == "quarter"
    assert [(i["period"], i["focus_driver"]) for i in quarter["items"]] == [
        ("2026-Q3", "deal_size")
    ]


def test_default_end_is_the_current_period(client, factory, world, settings):
    # Rows in the current month and the one before: the default window reaches them.
    now = period_of(settings.today(), "month", settings.calendar)
    before = shift(now, -1, settings.calendar)
    cy = factory.rep(name="Cy")
    for p, ratio in ((before, 0.3), (now, 0.31)):
        factory.coaching_row(
            cy, p.label, "win_rate", version=world["version"], win_rate_vs_team=ratio
        )
    body = _record(client, cy, factory.key("admin"))
    assert body["last_period"] == now.label
    assert [i["period"] for i in body["items"]] == [before.label, now.label]
    assert body["current_run"]["stalled_periods"] == 2


def test_csv_export_has_one_row_per_entry(client, factory, world):
    r = client.get(
        f"/api/v1/reps/{world['ann'].id}/coaching/record",
        params={"end": "2026-10", "format": "csv"},
        headers=factory.key("analyst"),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="record.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["period"] for row in rows] == MONTHS
    assert rows[0]["verdict"] == "not_improving"
    assert rows[0]["summary"].startswith("win rate named in 2026-05")
    assert '"period":"2026-06"' in rows[0]["followed_by"]


def test_scope_and_not_found(client, factory, world):
    manager = factory.key("manager", rep_id=world["mo"].id)
    assert _record(client, world["ann"], manager, end="2026-10")["items"]
    # Another team's rep is a 404 to North's manager, as on /coaching.
    other = client.get(f"/api/v1/reps/{world['zed'].id}/coaching/record", headers=manager)
    assert other.status_code == 404
    assert _record(client, world["zed"], factory.key("viewer"), end="2026-10")["items"]
    missing = client.get("/api/v1/reps/999999/coaching/record", headers=factory.key("admin"))
    assert missing.status_code == 404
    assert client.get(f"/api/v1/reps/{world['ann'].id}/coaching/record").status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"periods": 0},
        {"periods": 37},
        {"horizon": 0},
        {"horizon": 13},
        {"kind": "week"},
        {"end": "2026-13"},
        {"end": "0001-02", "periods": 12},  # before the first supported month
        {"period_kind": "month"},  # the parameter is `kind`, as on /trend and /performance
    ],
)
def test_bad_parameters_are_422(client, factory, world, params):
    r = client.get(
        f"/api/v1/reps/{world['ann'].id}/coaching/record",
        params=params,
        headers=factory.key("admin"),
    )
    assert r.status_code == 422, (params, r.text)


def test_nothing_named_says_why(client, factory, world):
    h = factory.key("admin")
    body = _record(client, world["ann"], h, end="2026-02", periods=3)
    assert body["items"] == [] and body["current_run"] is None
    assert body["reason"] == (
        f"no coaching focus named for rep {world['ann'].id} in the months 2025-12 to 2026-02 "
        f"in snapshot {world['version']}"
    )


def test_no_snapshot_yet(client, factory):
    rep = factory.rep(name="New")
    body = _record(client, rep, factory.key("admin"), end="2026-10")
    assert body["items"] == [] and body["snapshot"] is None
    assert body["reason"].startswith("no snapshot yet")


def test_openapi_types_the_record(app):
    schema = app.openapi()
    op = schema["paths"]["/api/v1/reps/{rep_id}/coaching/record"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/CoachingRecordRead")
    components = schema["components"]["schemas"]
    entry = components["CoachingRecordEntry"]["properties"]
    assert set(entry["verdict"]["enum"]) == {
        "improving",
        "not_improving",
        "worsening",
        "resolved",
        "too_early",
    }
    assert entry["followed_by"]["items"]["$ref"].endswith("/RecordPoint")
    assert {p["name"] for p in op["parameters"]} >= {"kind", "periods", "horizon", "end"}
