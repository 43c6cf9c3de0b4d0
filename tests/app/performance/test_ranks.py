"""The API's in-place ranking equals analytics.trends.ranks, the documented definition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import trends
from app.performance import service
from app.performance.schemas import PerformanceRead


def test_rank_matches_trends_ranks_on_random_rows():
    rng = np.random.default_rng(7)
    n = 400
    attainment = rng.choice([0.5, 0.8, 1.0, 1.2, np.nan], size=n).tolist()
    attainment = [None if np.isnan(a) else a + float(rng.integers(0, 3)) / 10 for a in attainment]
    rows = [
        PerformanceRead.model_construct(
            subject_type="rep" if i % 17 else "team",
            team_id=int(rng.integers(1, 6)) if i % 11 else None,
            period=str(rng.choice(["2026-10", "2026-11"])),
            metric=str(rng.choice(["won_revenue", "won_deals"])),
            attainment=attainment[i],
            rank_in_team=None,
            rank_in_company=None,
            percentile_in_company=None,
        )
        for i in range(n)
    ]
    service._rank(rows)
    reps = [r for r in rows if r.subject_type == "rep"]
    frame = pd.DataFrame(
        {
            "team_id": pd.array([r.team_id for r in reps], dtype="Int64"),
            "period": [f"{r.period}/{r.metric}" for r in reps],
            "attainment": pd.array([r.attainment for r in reps], dtype="Float64").astype(float),
        }
    )
    expected = trends.ranks(frame, metric="attainment", higher_is_better=True)
    for item, want in zip(reps, expected.to_dict("records"), strict=True):
        assert item.rank_in_company == service._int_or_none(want["rank_in_company"])
        assert item.rank_in_team == service._int_or_none(want["rank_in_team"])
        pct = service._float_or_none(want["percentile_in_company"])
        assert item.percentile_in_company == (None if pct is None else round(pct, 1))
    assert all(r.rank_in_company is None for r in rows if r.subject_type == "team")
    assert any(r.rank_in_team is None and r.rank_in_company for r in reps)  # no team: no team rank
