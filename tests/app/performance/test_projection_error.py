"""Each projection with its backtested error, through the compute and the API (JSON and CSV),
on a small org whose figures are worked out by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from app.performance import compute

TODAY = date(2026, 11, 18)


@pytest.fixture
def org(session, settings, factory):
    """One rep on one team. July 2026: a lost deal of 400. August to October: each month a
    deal of 100 won on the 5th and one of 300 won on the 25th, both created on the 1st."""
    team = factory.team()
    rep = factory.rep(team_id=team.id)
    factory.deal(
        rep_id=rep.id,
        amount=400.0,
        status="lost",
        stage="Closed Lost",
        created_at=datetime(2026, 7, 1, tzinfo=UTC),
        close_date=date(2026, 7, 10),
        closed_at=datetime(2026, 7, 10, tzinfo=UTC),
    )
    for m in (8, 9, 10):
        factory.won(rep, 100.0, date(2026, m, 5))
        factory.won(rep, 300.0, date(2026, m, 25))
    for period in ("2026-11", "2026-Q4"):
        factory.target(rep_id=rep.id, period=period, value=1000.0)
        factory.target(team_id=team.id, period=period, value=1000.0)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    session.flush()
    return rep, team


# Hand computation, months (half the days elapsed at the midpoint: 15 of 31 or of 30).
# Won to the midpoint W = 100, open at it O = 300 (the deal won on the 25th), actual 400.
# Trailing win rate by value (12 months before): Aug 0 / 400 = 0, Sep 400 / 800 = 0.5,
# Oct 800 / 1200 = 2/3.
#   run rate: Aug 100 × 31/15, Sep 200, Oct 100 × 31/15; |error| / 400: 0.4833, 0.5, 0.4833
#   pipeline: Aug 100, Sep 250, Oct 300; |error| / 400: 0.75, 0.375, 0.25
RUN_RATE_MAPE = (2 * (400 - 3100 / 15) / 400 + 0.5) / 3
PIPELINE_MAPE = (0.75 + 0.375 + 0.25) / 3


def _get(client, headers, **params):
    r = client.get("/api/v1/performance", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r


def _items(client, headers, **params):
    """Rep and team rows."""
    return [
        item
        for subject in ("rep", "team")
        for item in _get(client, headers, subject_type=subject, **params).json()["items"]
    ]


def test_month_rows_carry_each_methods_error_and_the_better_method(client, factory, org):
    h = factory.key("analyst")
    items = _items(client, h, period="2026-11", metric="won_revenue")
    assert {r["subject_type"] for r in items} == {"rep", "team"}
    for row in items:  # one rep: the team's figures are the rep's
        errors = row["projection_errors"]
        assert errors["run_rate"]["method"] == "run_rate"
        assert errors["run_rate"]["mape"] == pytest.approx(RUN_RATE_MAPE)
        assert errors["run_rate"]["bias"] == pytest.approx(-RUN_RATE_MAPE)  # under-projects
        assert errors["run_rate"]["periods"] == 3
        assert errors["pipeline"]["mape"] == pytest.approx(PIPELINE_MAPE)
        assert errors["pipeline"]["bias"] == pytest.approx(-PIPELINE_MAPE)
        assert errors["pipeline"]["periods"] == 3
        # The pipeline's error is the lower, on 3 periods: the team's method, and its reps'.
        assert row["projection_method"] == "pipeline"
        assert row["projection"] == row["projected_with_pipeline"]


def test_quarter_rows_need_three_periods_to_prefer_a_method(client, factory, org):
    # Q3 2026 (92 days), at August's midpoint: W = 0 (July) + 100, O = 300 + 0 (no deal due
    # in September was open by mid-August), win rate 0 / 400 = 0; actual 800. The only ended
    # quarter with an actual: one period, too few to prefer the pipeline.
    h = factory.key("analyst")
    items = _items(client, h, period="2026-Q4", metric="won_revenue")
    assert {r["subject_type"] for r in items} == {"rep", "team"}
    for row in items:
        errors = row["projection_errors"]
        run_rate = 100 * 92 / 46
        assert errors["run_rate"]["mape"] == pytest.approx(abs(run_rate - 800) / 800)
        assert errors["run_rate"]["periods"] == 1
        assert errors["pipeline"]["mape"] == pytest.approx(700 / 800)
        assert row["projection_method"] == "run_rate"
        assert row["projection"] == row["projected"]


def test_rows_without_history_have_no_error(client, factory, session, settings):
    rep = factory.rep(team_id=factory.team().id)
    factory.target(rep_id=rep.id, period="2026-11", value=1000.0)
    factory.target(rep_id=rep.id, period="2026-11", metric="activities", value=10.0)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    items = _get(client, factory.key("analyst"), period="2026-11").json()["items"]
    assert {r["metric"] for r in items} == {"won_revenue", "activities"}
    for row in items:
        assert row["projection_errors"] == {"run_rate": None, "pipeline": None}
        assert row["projection_method"] == "run_rate"
        assert row["projection"] == row["projected"]


def test_csv_export_has_the_projection_columns(client, factory, org):
    h = factory.key("analyst")
    text = _get(client, h, period="2026-11", metric="won_revenue", format="csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    for name in ("run_rate", "pipeline"):
        for field in ("method", "mape", "bias", "periods"):
            assert f"projection_errors.{name}.{field}" in rows[0]
    assert "projection_errors.run_rate" not in rows[0]
    row = rows[0]
    assert row["projection_method"] == "pipeline"
    assert float(row["projection_errors.pipeline.mape"]) == pytest.approx(PIPELINE_MAPE)
    assert row["projection_errors.pipeline.periods"] == "3"
    assert float(row["projection"]) == pytest.approx(float(row["projected_with_pipeline"]))


def test_openapi_types_the_projection_fields(client, factory):
    schema = client.get("/openapi.json", headers=factory.key("analyst")).json()
    components = schema["components"]["schemas"]
    fields = components["PerformanceRead"]["properties"]
    for name in ("projection_method", "projection", "projection_errors"):
        assert fields[name].get("description"), name
    error = components["ProjectionError"]["properties"]
    assert set(error) == {"method", "mape", "bias", "periods"}
    assert all(p.get("description") for p in error.values())
