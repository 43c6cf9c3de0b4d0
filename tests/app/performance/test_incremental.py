"""An incremental recompute, which starts from the stored state, shifts it by the changed deals
and reads only the records of the dirty activity cells, gives the rows a full recompute gives."""

from __future__ import annotations

import gc
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from app.activities.models import Activity
from app.deals.models import Deal
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute, versioning
from app.performance.models import (
    VERSIONING_COLUMNS,
    CoachingRow,
    DealChange,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    ReportedDriverRow,
)
from app.pipeline import ingest
from app.reps.models import Rep
from app.targets import service as targets_service
from connectors.base import ACTIVITY_FIELDS, DEAL_FIELDS

TODAY = date(2026, 11, 18)


def _records(session: Any, model: Any, fields: tuple[str, ...], rows: list[Any]) -> list[dict]:
    return [{f: getattr(r, f) for f in (*fields, "rep_id", "is_deleted")} for r in rows]


def _deals_closing(session: Any, month: tuple[int, int], status: str, n: int) -> list[Deal]:
    first = date(*month, 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return list(
        session.scalars(
            select(Deal)
            .where(Deal.status == status, Deal.close_date.between(first, last))
            .order_by(Deal.id)
            .limit(n)
        )
    )


def _plant_changes(session: Any) -> None:
    """Changes in a few months, of every kind a sync brings."""
    source_id = session.scalar(select(Deal.source_id).limit(1))
    reps = sorted({r for r in session.scalars(select(Deal.rep_id).distinct()) if r})
    deals: list[dict[str, Any]] = []
    # March: an amount revised, a won deal lost, one deleted.
    march = _records(session, Deal, DEAL_FIELDS, _deals_closing(session, (2026, 3), "won", 3))
    march[0]["amount"] = float(march[0]["amount"]) * 1.7
    march[1].update(status="lost", stage="Closed Lost", probability=0.0)
    march[2]["is_deleted"] = True
    deals += march
    # July: a close date moved to September, a deal handed to another rep.
    july = _records(session, Deal, DEAL_FIELDS, _deals_closing(session, (2026, 7), "won", 2))
    moved = july[0]["closed_at"] or datetime(2026, 7, 15, tzinfo=UTC)
    july[0].update(close_date=date(2026, 9, 3), closed_at=moved.replace(month=9, day=3))
    july[1]["rep_id"] = next(r for r in reps if r != july[1]["rep_id"])
    deals += july
    # A new deal won late on the last day of August (UTC), in another currency.
    deals.append(
        {
            "external_id": "PLANTED-1",
            "rep_id": reps[0],
            "amount": 4321.5,
            "currency": "EUR",
            "stage": "Closed Won",
            "status": "won",
            "probability": 1.0,
            "created_at": datetime(2026, 6, 30, 23, 30, tzinfo=UTC),
            "close_date": date(2026, 8, 31),
            "closed_at": datetime(2026, 8, 31, 23, 45, tzinfo=UTC),
            "is_deleted": False,
        }
    )
    ingest.upsert_records(session, Deal, source_id, deals)
    # Activities: new ones in May, one deleted in October.
    activities = [
        {
            "external_id": f"PLANTED-A{i}",
            "rep_id": reps[i % len(reps)],
            "type": ("call", "email", "meeting", "sms")[i % 4],
            "occurred_at": datetime(2026, 5, 1 + i, 9, tzinfo=UTC),
            "is_deleted": False,
        }
        for i in range(6)
    ]
    october = session.scalars(
        select(Activity)
        .where(Activity.occurred_at >= datetime(2026, 10, 1, tzinfo=UTC))
        .order_by(Activity.id)
        .limit(1)
    ).one()
    gone = _records(session, Activity, ACTIVITY_FIELDS, [october])
    gone[0]["is_deleted"] = True
    ingest.upsert_records(session, Activity, source_id, activities)
    ingest.upsert_records(session, Activity, october.source_id, gone)


def _visible(session: Any, model: Any, version: int, periods: list[str]) -> dict[tuple, dict]:
    key = {
        PerformanceRow: ("subject_type", "rep_id", "team_id", "metric", "period"),
        MetricRow: ("subject_type", "subject_id", "period"),
        CoachingRow: ("rep_id", "period"),
        ReportedDriverRow: ("rep_id", "period", "driver"),
    }[model]
    rows = session.scalars(
        select(model).where(versioning.visible(model, version), model.period.in_(periods))
    )
    out = {}
    for r in rows:
        values = {
            c.key: getattr(r, c.key)
            for c in model.__table__.columns
            if c.key not in VERSIONING_COLUMNS
        }
        out[tuple(values[k] for k in key)] = values
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"timezone": "America/New_York", "fiscal_year_start_month": 2}],
)
def test_incremental_equals_full_row_for_row(session, settings, overrides):
    tuned = settings.model_copy(update=overrides)
    load_demo(
        session=session, config=DemoConfig(seed=7, today=TODAY, teams=3, reps_per_team=4, months=15)
    )
    compute.run(session=session, settings=tuned, as_of=TODAY, full=True)
    _plant_changes(session)
    marked = set(session.scalars(select(DirtyDay.kind)))
    assert marked == {"deal", "activity"}

    inc = compute.run(session=session, settings=tuned, as_of=TODAY)
    assert inc.kind == "incremental" and inc.rows_written > 0
    assert session.scalar(select(DirtyDay.day).limit(1)) is None
    assert session.scalar(select(DealChange.external_id).limit(1)) is None
    total_deals = session.scalar(select(Deal.id).order_by(Deal.id.desc()).limit(1))
    assert inc.details["deals"] < total_deals  # only the dirty cells' records were read
    # The comparison covers the paths to target (PerformanceRow.details) too.
    paths = _visible(session, PerformanceRow, inc.id, inc.periods)
    assert sum(1 for row in paths.values() if row["details"].get("path_to_target")) > 10
    _assert_same_as_full(session, tuned, inc)


def _assert_same_as_full(session: Any, settings: Any, inc: Any, as_of: date = TODAY) -> None:
    full = compute.run(session=session, settings=settings, as_of=as_of, full=True)
    for model in versioning.VERSIONED:
        ours = _visible(session, model, inc.id, inc.periods)
        theirs = _visible(session, model, full.id, inc.periods)
        assert ours.keys() == theirs.keys(), model.__name__
        bad = [k for k in ours if not _same(ours[k], theirs[k])]
        assert not bad, (model.__name__, bad[:3], [(ours[k], theirs[k]) for k in bad[:1]])
    # The full compute found nothing in scope to rewrite.
    for model in versioning.VERSIONED:
        rewritten = session.scalars(
            select(model.id).where(model.valid_from == full.id, model.period.in_(inc.periods))
        ).all()
        assert rewritten == [], model.__name__


def test_settings_change_reads_every_record(session, settings):
    load_demo(
        session=session, config=DemoConfig(seed=7, today=TODAY, teams=2, reps_per_team=3, months=15)
    )
    first = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    again = compute.run(session=session, settings=settings, as_of=TODAY)
    assert again.details["activities"] == 0  # nothing dirty: stored rows only
    rates = {**settings.currency_rates, "EUR": 2.0}
    changed = compute.run(
        session=session, settings=settings.model_copy(update={"currency_rates": rates}), as_of=TODAY
    )
    assert changed.details["activities"] == first.details["activities"] > 0


def _change(session: Any, deal: Deal, **values: Any) -> None:
    record = _records(session, Deal, DEAL_FIELDS, [deal])[0] | values
    ingest.upsert_records(session, Deal, deal.source_id, [record])


def test_incrementals_in_a_row_keep_the_state_exact(session, settings):
    """Changes applied on changes: a deal changed twice before a compute (the state counted
    its first version), one new and changed again, one moved to another rep and back."""
    load_demo(
        session=session, config=DemoConfig(seed=3, today=TODAY, teams=2, reps_per_team=3, months=15)
    )
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    won = _deals_closing(session, (2026, 9), "won", 2)
    reps = sorted({r for r in session.scalars(select(Deal.rep_id).distinct()) if r})
    other = next(r for r in reps if r != won[1].rep_id)
    first_rep = won[1].rep_id
    _change(session, won[0], amount=float(won[0].amount) * 2)
    _change(session, won[0], status="lost", stage="Closed Lost")
    _change(session, won[1], rep_id=other)
    before = session.scalars(select(DealChange)).all()
    assert {c.deal_id for c in before} == {won[0].id, won[1].id}
    assert next(c for c in before if c.deal_id == won[0].id).status == "won"  # first image
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    assert inc.details["deals"] < 200  # the changes and the open pipeline, not every deal

    new = {
        "external_id": "NEW-1",
        "rep_id": reps[0],
        "amount": 900.0,
        "currency": "USD",
        "stage": "Closed Won",
        "status": "won",
        "probability": 1.0,
        "created_at": datetime(2026, 10, 2, 9, tzinfo=UTC),
        "close_date": date(2026, 10, 20),
        "closed_at": datetime(2026, 10, 20, 15, tzinfo=UTC),
        "is_deleted": False,
    }
    ingest.upsert_records(session, Deal, won[0].source_id, [new])
    ingest.upsert_records(
        session, Deal, won[0].source_id, [new | {"close_date": date(2026, 11, 2)}]
    )
    session.refresh(won[1])
    _change(session, won[1], rep_id=first_rep)
    _change(session, won[0], is_deleted=True)
    again = compute.run(session=session, settings=settings, as_of=TODAY)
    _assert_same_as_full(session, settings, again)


def test_open_pipeline_kept_in_the_state(session, settings):
    """The open deals due from as_of on come from the state, shifted by the changed deals:
    a probability revised, close dates moved past due and beyond the year, a due deal won,
    one deleted, one left without a rep, a new one; then time passing, and a new fiscal year
    (read again)."""
    load_demo(
        session=session, config=DemoConfig(seed=5, today=TODAY, teams=2, reps_per_team=3, months=15)
    )
    # Targets ahead, so that the pipeline due shows in their rows.
    rows = [
        {"rep_id": rep_id, "metric": metric, "period": period, "value": 50_000.0}
        for rep_id in session.scalars(select(Rep.id).where(Rep.role == "rep"))
        for metric in ("won_revenue", "won_deals")
        for period in ("2026-12", "2026-Q4", "2027-01", "2027-Q1")
    ]
    targets_service.upsert_many(
        session=session,
        rows=targets_service.validate_rows(session=session, rows=rows, cal=settings.calendar),
    )
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    due = _deals_closing(session, (2026, 12), "open", 8)
    assert len(due) == 8
    _change(session, due[7], rep_id=None)  # in no frame any more
    _change(session, due[0], probability=0.9)
    _change(session, due[1], close_date=date(2027, 2, 10))
    _change(session, due[6], close_date=date(2026, 11, 2))
    won_at = datetime(2026, 11, 17, 15, tzinfo=UTC)
    _change(session, due[2], status="won", stage="Closed Won", closed_at=won_at)
    _change(session, due[3], is_deleted=True)
    new = {
        "external_id": "NEW-OPEN",
        "rep_id": due[4].rep_id,
        "amount": 12_000.0,
        "currency": "EUR",
        "stage": "Proposal",
        "status": "open",
        "probability": 0.5,
        "created_at": datetime(2026, 11, 10, 9, tzinfo=UTC),
        "close_date": date(2026, 12, 20),
        "closed_at": None,
        "is_deleted": False,
    }
    ingest.upsert_records(session, Deal, due[4].source_id, [new])
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    assert inc.details["deals"] < 50  # the changed deals only: the pipeline came from the state
    _assert_same_as_full(session, settings, inc)

    # Days later a deal due in between has become past due.
    later = date(2026, 12, 10)
    _change(session, due[5], amount=float(due[5].amount) + 1)
    inc = compute.run(session=session, settings=settings, as_of=later)
    assert inc.details["deals"] < 50
    _assert_same_as_full(session, settings, inc, as_of=later)

    # A new fiscal year reaches past the state's span: the pipeline is read again.
    next_year = date(2027, 1, 5)
    inc = compute.run(session=session, settings=settings, as_of=next_year)
    open_due = session.scalar(
        select(func.count(Deal.id)).where(
            Deal.status == "open", ~Deal.is_deleted, Deal.close_date >= next_year
        )
    )
    assert inc.details["deals"] >= open_due > 0
    _assert_same_as_full(session, settings, inc, as_of=next_year)


def test_compute_pauses_cycle_collection_and_resumes_it(session, settings, monkeypatch):
    load_demo(
        session=session, config=DemoConfig(seed=3, today=TODAY, teams=1, reps_per_team=3, months=3)
    )
    seen: list[bool] = []
    real = compute._run

    def spy(**kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(**kwargs)

    monkeypatch.setattr(compute, "_run", spy)
    assert gc.isenabled()
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    assert seen == [False] and gc.isenabled()

    def fail(**kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(compute, "_run", fail)
    with pytest.raises(RuntimeError):
        compute.run(session=session, settings=settings, as_of=TODAY)
    assert gc.isenabled()  # resumed after an error too
    gc.disable()
    try:
        monkeypatch.setattr(compute, "_run", spy)
        compute.run(session=session, settings=settings, as_of=TODAY)
        assert not gc.isenabled()  # a caller's own pause is left as it was
    finally:
        gc.enable()


def _midpoints(session: Any) -> Any:
    from app.performance.state import load_state

    mid = load_state(session)["rep_mid"]
    return mid.sort_values(["rep_id", "period_index"], ignore_index=True)


def test_midpoint_figures_in_the_state_shift_with_the_changed_deals(session, settings):
    """The projection backtest's inputs (won to and open at each month's midpoint) are kept in
    the state; an incremental compute shifts them by the changed deals to what a full compute
    reads from the records, and the rows' projection errors follow."""
    load_demo(
        session=session, config=DemoConfig(seed=7, today=TODAY, teams=3, reps_per_team=4, months=15)
    )
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    kept = _midpoints(session)
    assert len(kept) and (kept["open_mid_deals"] > 0).any()
    _plant_changes(session)
    inc = compute.run(session=session, settings=settings, as_of=TODAY)
    shifted = _midpoints(session)
    assert not shifted.equals(kept)  # the planted changes moved some midpoint figures
    full = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    read = _midpoints(session)
    assert list(shifted.columns) == list(read.columns)
    assert shifted[["rep_id", "period_index"]].equals(read[["rep_id", "period_index"]])
    for column in shifted.columns:
        assert np.allclose(shifted[column], read[column], rtol=1e-9, atol=1e-6), column
    measured = session.scalar(
        select(func.count()).where(
            PerformanceRow.valid_to.is_(None), PerformanceRow.run_rate_periods > 0
        )
    )
    assert measured, "no row carries a measured projection error"
    assert inc.details["deals"] < full.details["deals"]
