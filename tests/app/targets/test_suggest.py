"""Target suggestions say when they cannot be computed as asked, and why, per row; a fallback
is used only when asked for; never a silent 0. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

URL = "/api/v1/targets/suggest"


def _suggest(client, factory, **body):
    r = client.post(URL, json={"period": "2026-11", **body}, headers=factory.key("analyst"))
    assert r.status_code == 200, r.text
    return {i["rep_id"]: i for i in r.json()["items"]}


@pytest.fixture
def recent(factory):
    """Bookings start in 2026-05: nothing closed a year before 2026-11. ``spanning`` has a deal
    created in 2025-10 and won in 2026-06; ``blank`` has no record and no start date."""
    team = factory.team()
    steady = factory.rep(team_id=team.id)
    for month in (5, 6, 7, 8, 9, 10):
        factory.won(steady, 1000 * month, date(2026, month, 12))
    spanning = factory.rep(team_id=team.id)
    factory.deal(
        rep_id=spanning.id,
        amount=5000,
        created_at=datetime(2025, 10, 20, tzinfo=UTC),
        close_date=date(2026, 6, 10),
        closed_at=datetime(2026, 6, 10, tzinfo=UTC),
    )
    blank = factory.rep(team_id=team.id)
    return steady.id, spanning.id, blank.id


def test_no_data_a_year_back_gives_null_and_the_reason_per_row(client, factory, recent):
    steady, spanning, blank = recent
    items = _suggest(client, factory)
    assert set(items) == {steady, spanning, blank}, "every rep gets a row, none is dropped"
    for rep_id in (steady, spanning):
        item = items[rep_id]
        assert item["value"] is None, "no silent 0 (the spanning deal's rep got 0 before)"
        assert item["method"] == "last_year_growth"
        assert item["basis"] == {"2025-11": None}
        assert "no history a year back" in item["reason"]
        assert "data starts on 2026-05-12" in item["reason"]
    assert items[blank]["value"] is None and items[blank]["history_start"] is None
    assert "no start date and no deals or activities" in items[blank]["reason"]


def test_fallback_to_the_trailing_average_when_asked(client, factory, recent):
    steady, spanning, blank = recent
    items = _suggest(client, factory, fallback="trailing_average", growth_pct=0)
    item = items[steady]
    assert item["value"] == pytest.approx((8000 + 9000 + 10000) / 3)
    assert item["method"] == "last_year_growth:trailing_average"
    assert item["basis"] == {"2026-10": 10000, "2026-09": 9000, "2026-08": 8000}
    assert item["reason"].startswith("no history a year back")
    assert "trailing average is used" in item["reason"]
    # the spanning rep's history covers the trailing months, with nothing won in them
    assert items[spanning]["value"] == 0
    assert items[spanning]["method"] == "last_year_growth:trailing_average"
    assert "booked 0" in items[spanning]["reason"]
    assert items[blank]["value"] is None and items[blank]["method"] == "last_year_growth"
    assert "no history in the last 3 periods" in items[blank]["reason"]


def test_genuine_zero_says_so_and_a_new_rep_is_named_too_new(client, factory):
    veteran = factory.rep(start_date=date(2024, 1, 1))
    factory.won(veteran, 7000, date(2025, 11, 3))
    idle = factory.rep(start_date=date(2024, 1, 1))
    newcomer = factory.rep(start_date=date(2026, 3, 1))
    factory.won(newcomer, 4000, date(2026, 10, 3))
    items = _suggest(client, factory, growth_pct=0)
    assert items[veteran.id]["value"] == 7000 and items[veteran.id]["reason"] is None
    assert items[idle.id]["value"] == 0
    assert items[idle.id]["basis"] == {"2025-11": 0}
    assert "booked 0 in 2025-11" in items[idle.id]["reason"]
    assert items[newcomer.id]["value"] is None
    assert items[newcomer.id]["history_start"] == "2026-03-01"
    assert "the rep started on 2026-03-01, after 2025-11" in items[newcomer.id]["reason"]


def test_trailing_average_skips_periods_before_the_rep_started(client, factory):
    rep = factory.rep(start_date=date(2026, 9, 1))
    factory.won(rep, 3000, date(2026, 9, 10))
    factory.won(rep, 6000, date(2026, 10, 10))
    other = factory.rep(start_date=date(2020, 1, 1))
    factory.won(other, 1000, date(2026, 8, 10))
    items = _suggest(client, factory, method="trailing_average", growth_pct=0)
    item = items[rep.id]
    assert item["value"] == pytest.approx(4500), "not (3000 + 6000 + 0) / 3"
    assert item["basis"] == {"2026-10": 6000, "2026-09": 3000, "2026-08": None}
    assert "averaged over the 2 of 3 periods" in item["reason"]
    assert items[other.id]["value"] == 333.33  # (1000 + 0 + 0) / 3, to the cent


def test_team_median_fallback_is_marked(client, factory):
    team = factory.team()
    veteran = factory.rep(team_id=team.id, start_date=date(2024, 1, 1))
    factory.won(veteran, 7000, date(2025, 11, 3))
    newcomer = factory.rep(team_id=team.id, start_date=date(2026, 3, 1))
    items = _suggest(client, factory, fallback="team_median", growth_pct=0)
    assert items[newcomer.id]["value"] == 7000
    assert items[newcomer.id]["method"] == "last_year_growth:team_median"
    assert "team's median suggestion is used" in items[newcomer.id]["reason"]


def test_bad_fallback_is_a_422_naming_it(client, factory):
    h = factory.key("analyst")
    r = client.post(URL, json={"period": "2026-11", "fallback": "guess"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "fallback"
    r = client.post(
        URL,
        json={"period": "2026-11", "method": "trailing_average", "fallback": "trailing_average"},
        headers=h,
    )
    (detail,) = r.json()["error"]["details"]
    assert r.status_code == 422 and detail["field"] == "fallback"
    assert "team_median" in detail["message"]
