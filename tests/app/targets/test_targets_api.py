from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from app.targets.models import Target


@pytest.fixture
def rep(factory):
    return factory.rep(name="Ana Lima", email="ana@example.com")


def test_create_read_update_delete(client, factory, rep):
    h = factory.key("analyst")
    body = {
        "rep_id": rep.id,
        "team_id": None,
        "metric": "won_revenue",
        "period": "2026-q4",
        "value": 250000,
    }
    r = client.post("/api/v1/targets", json=body, headers=h)
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["period"], t["period_kind"], t["value"]) == ("2026-Q4", "quarter", 250000)
    assert t["created_at"].endswith("Z")
    r = client.patch(f"/api/v1/targets/{t['id']}", json={"value": 260000}, headers=h)
    assert r.json()["value"] == 260000
    assert client.get(f"/api/v1/targets/{t['id']}", headers=h).json()["value"] == 260000
    assert client.delete(f"/api/v1/targets/{t['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/targets/{t['id']}", headers=h).status_code == 404


def test_post_is_an_idempotent_upsert(client, factory, rep, session):
    h = factory.key("admin")
    body = {"rep_id": rep.id, "metric": "won_revenue", "period": "2026-11", "value": 100}
    assert client.post("/api/v1/targets", json=body, headers=h).status_code == 201
    assert client.post("/api/v1/targets", json=body, headers=h).status_code == 200
    body["value"] = 120
    r = client.post("/api/v1/targets", json=body, headers=h)
    assert r.status_code == 200 and r.json()["value"] == 120
    assert session.scalar(select(func.count()).select_from(Target)) == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"metric": "happiness"}, "metric"),
        ({"period": "2026-13"}, "period"),
        ({"value": -5}, "value"),
        ({"rep_id": 999999}, "rep"),
    ],
)
def test_bad_target_names_the_field(client, factory, rep, patch, field):
    body = {"rep_id": rep.id, "metric": "won_revenue", "period": "2026-11", "value": 1, **patch}
    r = client.post("/api/v1/targets", json=body, headers=factory.key("admin"))
    assert r.status_code == 422
    assert field in {d["field"] for d in r.json()["error"]["details"]}


def test_rep_and_team_together_is_refused(client, factory, rep):
    team = factory.team()
    body = {
        "rep_id": rep.id,
        "team_id": team.id,
        "metric": "won_revenue",
        "period": "2026-11",
        "value": 1,
    }
    r = client.post("/api/v1/targets", json=body, headers=factory.key("admin"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


def test_list_filters(client, factory, rep):
    other = factory.rep()
    team = factory.team()
    factory.target(rep_id=rep.id, period="2026-10")
    factory.target(rep_id=rep.id, period="2026-11", metric="activities", value=200)
    factory.target(rep_id=other.id, period="2026-11")
    factory.target(team_id=team.id, period="2026-Q4", value=1e6)
    h = factory.key("viewer")
    get = lambda **q: client.get("/api/v1/targets", params=q, headers=h).json()["items"]  # noqa: E731
    assert len(get(rep_id=rep.id)) == 2
    assert [t["metric"] for t in get(period="2026-11", rep_id=rep.id)] == ["activities"]
    assert [t["team_id"] for t in get(team_id=team.id)] == [team.id]
    assert len(get(metric="won_revenue")) == 3


def test_cursor_pagination_walks_every_target_once(client, factory, rep):
    for m in range(1, 13):
        factory.target(rep_id=rep.id, period=f"2026-{m:02d}")
    h = factory.key("viewer")
    seen, cursor = [], None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/targets", params=params, headers=h).json()
        seen += [t["period"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"2026-{m:02d}" for m in range(1, 13)]
    r = client.get("/api/v1/targets", params={"cursor": "garbage!"}, headers=h)
    assert r.status_code == 422


CSV_OK = (
    "rep_email,metric,period,value\n"
    "ana@example.com,won_revenue,2026-Q4,250000\n"
    "ana@example.com,activities,2026-W48,60\n"
)


def _upload(client, headers, text):
    return client.post(
        "/api/v1/targets/upload", files={"file": ("t.csv", text.encode())}, headers=headers
    )


def test_csv_upload_is_idempotent(client, factory, rep):
    h = factory.key("analyst")
    r = _upload(client, h, CSV_OK)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"]) == (2, 0)
    r = _upload(client, h, CSV_OK)
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 2)


def test_csv_with_bad_rows_lists_each_and_writes_nothing(client, factory, rep, session):
    team = factory.team(name="East")
    text = (
        "rep_email,team,metric,period,value\n"
        "ana@example.com,,won_revenue,2026-Q4,250000\n"  # fine
        "ghost@example.com,,won_revenue,2026-Q4,1\n"  # unknown rep
        "ana@example.com,,won_revenue,2026-Q9,1\n"  # bad period
        "ana@example.com,,won_revenue,2026-11,-3\n"  # negative
        "ana@example.com,,vibes,2026-11,3\n"  # unknown metric
        ",East,won_revenue,2026-Q4,900000\n"  # fine, a team
        "ana@example.com,,won_revenue,2026-Q4,7\n"  # duplicate of row 1
    )
    r = _upload(client, factory.key("admin"), text)
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert [(d["row"], d["field"]) for d in details] == [
        (2, "rep"),
        (3, "period"),
        (4, "value"),
        (5, "metric"),
        (7, "period"),
    ]
    assert "ghost@example.com" in details[0]["message"]
    assert session.scalar(select(func.count()).select_from(Target)) == 0
    assert team.id  # the valid team row was not written either


def test_csv_missing_columns(client, factory):
    r = _upload(client, factory.key("admin"), "who,metric\nx,won_revenue\n")
    assert r.status_code == 422
    assert "value" in r.json()["error"]["details"][0]["message"]


def test_viewer_and_manager_cannot_write_targets(client, factory, rep):
    body = {"rep_id": rep.id, "metric": "won_revenue", "period": "2026-11", "value": 1}
    for role, rep_id in (("viewer", None), ("manager", rep.id)):
        r = client.post("/api/v1/targets", json=body, headers=factory.key(role, rep_id=rep_id))
        assert r.status_code == 403


def test_suggest_last_year_growth_and_accept(client, factory, session):
    team = factory.team()
    veteran = factory.rep(team_id=team.id)
    newbie = factory.rep(team_id=team.id)
    # 2025-Q4: veteran won 10,000 + 30,000 (one in EUR: 10,000 EUR = 10,800 USD)
    for amount, currency, day in ((10_000, "USD", 3), (10_000, "EUR", 20)):
        factory.deal(
            rep_id=veteran.id,
            amount=amount,
            currency=currency,
            close_date=date(2025, 11, day),
            closed_at=datetime(2025, 11, day, tzinfo=UTC),
        )
    factory.deal(rep_id=veteran.id, amount=99_999, status="lost", close_date=date(2025, 11, 4))
    factory.deal(rep_id=veteran.id, amount=50_000, is_deleted=True, close_date=date(2025, 11, 4))
    h = factory.key("analyst")
    body = {"period": "2026-Q4", "fallback": "team_median"}
    r = client.post("/api/v1/targets/suggest", json=body, headers=h)
    assert r.status_code == 200, r.text
    items = {i["rep_id"]: i for i in r.json()["items"]}
    assert items[veteran.id]["value"] == pytest.approx(20_800 * 1.03)
    assert items[veteran.id]["basis"] == {"2025-Q4": pytest.approx(20_800)}
    # no history at all: the team's median suggestion (when asked for), marked as such
    assert items[newbie.id]["method"] == "last_year_growth:team_median"
    assert items[newbie.id]["value"] == pytest.approx(20_800 * 1.03)
    assert items[newbie.id]["basis"] == {"2025-Q4": None}
    assert session.scalar(select(func.count()).select_from(Target)) == 0  # nothing written
    r = client.post("/api/v1/targets/bulk", json={"items": r.json()["items"]}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    assert session.scalar(select(func.count()).select_from(Target)) == 2


def test_suggest_trailing_average(client, factory):
    rep = factory.rep()
    for month, amount in ((8, 3000), (9, 6000), (10, 9000)):
        factory.deal(rep_id=rep.id, amount=amount, close_date=date(2026, month, 10))
    r = client.post(
        "/api/v1/targets/suggest",
        json={"period": "2026-11", "method": "trailing_average", "growth_pct": 0},
        headers=factory.key("admin"),
    )
    item = next(i for i in r.json()["items"] if i["rep_id"] == rep.id)
    assert item["value"] == pytest.approx(6000)
    assert item["basis"] == {"2026-10": 9000, "2026-09": 6000, "2026-08": 3000}
