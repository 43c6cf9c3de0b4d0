from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from app.activities.models import Activity
from app.deals.models import Deal, DealStageChange
from app.demo.load import load_demo
from app.reps.models import Rep
from app.targets.models import Target

TODAY = date(2026, 11, 26)


def _counts(session):
    return tuple(
        session.scalar(select(func.count()).select_from(m))
        for m in (Rep, Deal, Activity, Target, DealStageChange)
    )


def test_demo_loads_and_reloading_changes_nothing(session, client, factory):
    load_demo(session=session, seed=7, today=TODAY)
    first = _counts(session)
    assert all(n > 0 for n in first)
    load_demo(session=session, seed=7, today=TODAY)
    assert _counts(session) == first
    # every rep but the VP has a manager and a team, visible through the API
    reps = client.get("/api/v1/reps", params={"limit": 500}, headers=factory.key("viewer")).json()[
        "items"
    ]
    assert len(reps) == first[0]
    assert sum(1 for r in reps if r["manager_name"] is None) == 1
    assert all(r["team_name"] for r in reps)
    # every deal and activity found its owner
    assert session.scalar(select(func.count()).select_from(Deal).where(Deal.rep_id.is_(None))) == 0
    assert session.scalar(select(func.max(Activity.occurred_at))).date() <= TODAY
