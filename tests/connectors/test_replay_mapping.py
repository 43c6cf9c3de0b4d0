"""Records the mapping rejected leave quarantine once what rejected them changes: a stage the
CRM's pipelines did not list, an activity type no setting mapped. With no edit in the CRM."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.activities.models import Activity
from app.core.db import transaction
from app.deals.models import Deal
from app.demo.sandbox import sandbox_state
from app.pipeline import sync as engine
from app.sources.models import QuarantinedRecord, Source
from connectors import registry
from connectors.sandbox.common import ServerThread
from tests.connectors.test_e2e_sync import DEMO, PAGE, add_source, sync

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _sandboxes_on_loopback(settings):
    settings.source_allow_private_destinations = True


def quarantined(session, source_id: int) -> dict[str, str]:
    session.expire_all()
    rows = session.execute(
        select(QuarantinedRecord.external_id, QuarantinedRecord.reason).where(
            QuarantinedRecord.source_id == source_id
        )
    ).all()
    return dict(rows)


def test_a_hubspot_deal_in_an_unlisted_stage_is_stored_once_the_stage_is_listed(
    session_factory, settings, session
):
    state = sandbox_state(**DEMO)
    deals, stages = state.data.deals, state.data.stages
    live_open = deals.index[(~deals["is_deleted"].astype(bool) & deals["status"].eq("open"))]
    row = live_open[0]
    deals.loc[row, "stage"] = "Pilot"  # a stage the pipelines do not list (yet)
    with ServerThread(registry.sandbox_app("hubspot", state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, "hubspot", server.url)
        sync(session_factory, settings, sid)
        held = quarantined(session, sid)
        (deal_id,) = [k for k, reason in held.items() if "Pilot" in reason]
        assert session.scalar(select(Deal.id).where(Deal.external_id == deal_id)) is None

        with state.lock:  # the CRM's admin adds the stage; the deal itself is not edited
            stages.loc[len(stages)] = {
                "pipeline": "default",
                "stage": "Pilot",
                "order": 3,
                "probability": 0.4,
                "status": "open",
            }
            state.version += 1
        second = sync(session_factory, settings, sid)

    assert second.details["replayed"] == 1
    assert deal_id not in quarantined(session, sid)
    stored = session.scalars(select(Deal).where(Deal.external_id == deal_id)).one()
    assert (stored.stage, stored.status, stored.probability) == ("Pilot", "open", 0.4)


def test_a_pipedrive_activity_of_an_unmapped_custom_type_is_stored_once_it_is_mapped(
    session_factory, settings, session
):
    """A custom type whose icon says nothing (Pipedrive's "camera") cannot be mapped: its
    activities wait in quarantine until the source's settings map the type, then a replay on
    demand stores them, without a sync and without an edit in the CRM."""
    state = sandbox_state(**DEMO)
    acts = state.data.activities
    acts.loc[acts.index[:3], "type"] = "site_visit"
    state.activity_types = {"site_visit": "camera"}
    with ServerThread(registry.sandbox_app("pipedrive", state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, "pipedrive", server.url)
        sync(session_factory, settings, sid)
        held = quarantined(session, sid)
        waiting = {k for k, reason in held.items() if "site_visit" in reason}
        assert len(waiting) == 3

        with transaction(session_factory) as s:
            source = s.get(Source, sid)
            source.config = {**source.config, "activity_types": {"site_visit": "meeting"}}
        run = engine.replay_now(session_factory=session_factory, settings=settings, source_id=sid)

    assert (run.kind, run.status, run.details["replayed"]) == ("replay", "succeeded", 3)
    assert run.inserted == 3 and run.details["still_quarantined"] == len(held) - 3
    assert not waiting & set(quarantined(session, sid))
    types = session.scalars(
        select(Activity.type).where(Activity.source_id == sid, Activity.external_id.in_(waiting))
    ).all()
    assert types == ["meeting"] * 3
