"""The public Maven CRM dataset, imported, targeted and computed, against DuckDB SQL over the
raw CSV: an independent computation written a different way."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from app.core.config import Settings
from app.performance import compute
from app.pipeline.imports import service as imports
from app.pipeline.imports.mapping import Mapping
from tests.app.pipeline.imports.test_import import MAPPING, MAVEN

AS_OF = date(2018, 1, 2)  # every 2017 quarter has ended


@pytest.fixture
def maven(session, database_url):
    imports.run_import(
        session=session,
        mapping=Mapping.load(MAPPING),
        reps=imports.read_csv(
            (MAVEN / "sales_teams.csv").read_bytes(), name="reps", max_rows=10**6
        ),
        deals=imports.read_csv(
            (MAVEN / "sales_pipeline.csv").read_bytes(), name="deals", max_rows=10**6
        ),
    )
    settings = Settings(database_url=database_url, history_months=15)
    return settings


def _duckdb(sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW pipeline AS SELECT * FROM read_csv_auto('{MAVEN / 'sales_pipeline.csv'}')"
    )
    return con.execute(sql).fetchall()


def test_quarterly_figures_match_duckdb(client, factory, session, maven):
    expected = _duckdb("""
        SELECT sales_agent, 'FY' || year(close_date) || '-Q' || quarter(close_date) AS q,
               sum(close_value) FILTER (WHERE deal_stage = 'Won') AS won_revenue,
               count(*) FILTER (WHERE deal_stage = 'Won') AS won,
               count(*) FILTER (WHERE deal_stage = 'Lost') AS lost
        FROM pipeline WHERE close_date IS NOT NULL GROUP BY ALL ORDER BY ALL
    """)
    reps = {
        r["name"]: r["id"]
        for r in client.get(
            "/api/v1/reps", params={"limit": 500}, headers=factory.key("admin")
        ).json()["items"]
    }
    checked = [
        row
        for row in expected
        if row[0] in ("Darcel Schlecht", "Anna Snelling", "Moses Frase", "Violet Mclelland")
    ]
    assert len(checked) >= 12
    h = factory.key("admin")
    for agent, q, *_ in checked:
        period = q.replace("FY", "")
        r = client.post(
            "/api/v1/targets",
            headers=h,
            json={
                "rep_id": reps[agent],
                "metric": "won_revenue",
                "period": period,
                "value": 100_000,
            },
        )
        assert r.status_code == 201
    compute.run(session=session, settings=maven, as_of=AS_OF, full=True)
    for agent, q, won_revenue, won, lost in checked:
        period = q.replace("FY", "")
        rows = client.get(
            "/api/v1/performance", headers=h, params={"period": period, "metric": "won_revenue"}
        ).json()["items"]
        row = next(x for x in rows if x["rep_name"] == agent)
        assert row["actual"] == pytest.approx(float(won_revenue or 0)), (agent, period)
        assert row["inputs"]["won_deals"] == won
        assert row["attainment"] == pytest.approx(float(won_revenue or 0) / 100_000)
        assert row["status"] == ("achieved" if (won_revenue or 0) >= 100_000 else "missed")
        board = client.get(
            "/api/v1/leaderboard", headers=h, params={"period": period, "metric": "win_rate"}
        ).json()["items"]
        entry = next(x for x in board if x["rep_name"] == agent)
        assert entry["value"] == pytest.approx(won / (won + lost))


def test_company_totals_match_the_published_facts(client, factory, session, maven):
    compute.run(session=session, settings=maven, as_of=AS_OF, full=True)
    h = factory.key("admin")
    total = 0.0
    for period in ("2017-Q1", "2017-Q2", "2017-Q3", "2017-Q4"):
        board = client.get(
            "/api/v1/leaderboard",
            headers=h,
            params={"period": period, "metric": "won_revenue", "limit": 500},
        ).json()["items"]
        total += sum(x["value"] or 0 for x in board)
    assert total == pytest.approx(10_005_534)  # data/README.md: total won close_value
    (duck_total,) = _duckdb("SELECT sum(close_value) FROM pipeline WHERE deal_stage = 'Won'")[0]
    assert total == pytest.approx(float(duck_total))
