"""Full resync against each sandbox CRM: what an incremental sync cannot see is corrected, what
the CRM no longer has is marked deleted, and the result equals a fresh database's."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from app.activities.models import Activity
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.deals.models import Deal
from app.demo.sandbox import sandbox_state
from app.performance import compute
from app.performance.models import MetricRow
from app.pipeline import sync as engine
from app.pipeline.records import open_engine
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord
from connectors import registry
from connectors.sandbox.common import ServerThread
from tests.connectors.test_e2e_sync import DEMO, PAGE, add_source, sync

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _sandboxes_on_loopback(settings):
    settings.source_allow_private_destinations = True


def resync(session_factory, settings, source_id: int):
    run = engine.run_sync(
        session_factory=session_factory, settings=settings, source_id=source_id, full=True
    )
    assert run.status == "succeeded", run.error
    assert run.kind == "resync"
    return run


def records(session, source_id: int) -> tuple[dict, dict]:
    """Deals and activities by external id, with their owner's email instead of a row id."""
    emails = dict(session.execute(select(Rep.id, Rep.email)).all())
    deals = {
        d.external_id: (
            emails[d.rep_id],
            round(d.amount or 0, 2),
            d.currency,
            d.status,
            d.stage,
            d.close_date,
            d.is_deleted,
        )
        for d in session.scalars(select(Deal).where(Deal.source_id == source_id))
    }
    acts = {
        a.external_id: (emails[a.rep_id], a.type, a.occurred_at, a.deal_external_id, a.is_deleted)
        for a in session.scalars(select(Activity).where(Activity.source_id == source_id))
    }
    return deals, acts


def figures(session_factory, settings) -> dict:
    """Every metric of every rep and period, keyed by the rep's email."""
    with transaction(session_factory) as session:
        compute.run(session=session, settings=settings, full=True)
    with session_factory() as session:
        emails = dict(session.execute(select(Rep.id, Rep.email)).all())
        return {
            (emails[r.subject_id], r.period): r.values
            for r in session.scalars(
                select(MetricRow).where(
                    MetricRow.subject_type == "rep", MetricRow.valid_to.is_(None)
                )
            )
        }


def purge(frame: pd.DataFrame, rows: list) -> set[str]:
    """Records gone from the CRM without a trace (past its recycle bin)."""
    if "is_purged" not in frame:
        frame["is_purged"] = False
    frame.loc[rows, "is_purged"] = True
    return {str(k) for k in frame.loc[rows, "external_id"]}


@pytest.mark.parametrize("kind", registry.CRM_KINDS)
def test_full_resync_equals_a_fresh_database_and_marks_purged_records_deleted(
    session_factory, settings, session, fresh_url, kind
):
    state = sandbox_state(**DEMO)
    with ServerThread(registry.sandbox_app(kind, state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, kind, server.url)
        sync(session_factory, settings, sid)
        deals, acts = state.data.deals, state.data.activities
        live = deals.index[~deals["is_deleted"].astype(bool).to_numpy()]
        with state.lock:
            gone_deals = purge(deals, list(live[:3]))
            gone_acts = purge(acts, list(acts.index[:4]))
            # A change the CRM made without a new modification stamp: invisible to a cursor.
            silent = live[5]
            deals.loc[silent, "amount"] = float(deals.loc[silent, "amount"] or 0) + 1000.0
            state.version += 1
        incremental = sync(session_factory, settings, sid)
        assert (incremental.updated, incremental.deleted) == (0, 0)  # saw none of it

        first = resync(session_factory, settings, sid)
        again = resync(session_factory, settings, sid)

        other = open_engine(fresh_url)
        upgrade(other)
        fresh_factory = make_sessionmaker(other)
        fresh_settings = settings.model_copy(update={"database_url": fresh_url})
        fresh_sid = add_source(fresh_factory, fresh_settings, kind, server.url)
        sync(fresh_factory, fresh_settings, fresh_sid)

    resynced_deals, resynced_acts = records(session, sid)
    with fresh_factory() as fresh:
        fresh_deals, fresh_acts = records(fresh, fresh_sid)
    # The purged records are kept, marked deleted; everything else is what a fresh sync stores.
    # (Each CRM has its own ids: a purged record is found by the demo key's number in it.)
    marked = {k for k, v in resynced_deals.items() if v[-1] and k not in fresh_deals}
    assert len(marked) == len(gone_deals) == first.details["reconciled"]["deals"]
    assert {k: v for k, v in resynced_deals.items() if k not in marked} == fresh_deals
    marked_acts = {k for k, v in resynced_acts.items() if v[-1] and k not in fresh_acts}
    assert len(marked_acts) == len(gone_acts) == first.details["reconciled"]["activities"]
    assert {k: v for k, v in resynced_acts.items() if k not in marked_acts} == fresh_acts
    assert first.updated >= 1 + len(gone_deals) + len(gone_acts)  # the silent change too
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.details["reconciled"] == {"deals": 0, "activities": 0}

    assert figures(session_factory, settings) == figures(fresh_factory, fresh_settings)
    other.dispose()


def test_a_read_that_would_delete_most_records_is_not_reconciled(
    session_factory, settings, session
):
    """A CRM that suddenly lists almost nothing (a permission taken away) must not wipe the
    data: the stream is not reconciled and the run says why."""
    state = sandbox_state(**DEMO)
    with ServerThread(registry.sandbox_app("hubspot", state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, "hubspot", server.url)
        sync(session_factory, settings, sid)
        acts = state.data.activities
        with state.lock:
            purge(acts, list(acts.index[: int(len(acts) * 0.8)]))
            state.version += 1
        run = resync(session_factory, settings, sid)
    assert run.details["reconciled"] == {"deals": 0}
    assert any("activities: not reconciled" in n for n in run.details["notices"])
    assert not session.scalar(
        select(Activity.id).where(Activity.source_id == sid, Activity.is_deleted.is_(True))
    )


def test_quarantined_records_the_crm_no_longer_has_leave_quarantine(
    session_factory, settings, session
):
    state = sandbox_state(**DEMO)
    with ServerThread(registry.sandbox_app("pipedrive", state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, "pipedrive", server.url)
        sync(session_factory, settings, sid)
        with transaction(session_factory) as s:
            for ext in ("999991", "999992"):
                s.add(
                    QuarantinedRecord(
                        source_id=sid,
                        object_type="deal",
                        external_id=ext,
                        record_key=ext,
                        reason="bad amount: 'x'",
                        payload={"id": int(ext)},
                    )
                )
        resync(session_factory, settings, sid)
    left = session.scalars(
        select(QuarantinedRecord.external_id).where(QuarantinedRecord.source_id == sid)
    ).all()
    assert "999991" not in left and "999992" not in left
