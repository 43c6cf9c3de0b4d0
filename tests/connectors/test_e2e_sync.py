"""End to end: each sandbox CRM (a real HTTP server) -> the sync engine -> SQLite/PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import func, select

from app.activities.models import Activity
from app.core import secrets
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.deals.models import Deal
from app.demo.sandbox import sandbox_state
from app.pipeline import sync as engine
from app.pipeline.records import open_engine
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from connectors import registry
from connectors.sandbox.common import ServerThread
from connectors.sandbox.hubspot import hubspot_id
from tests.conftest import TEST_SECRET_KEY

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KINDS = registry.CRM_KINDS
DEMO = {"seed": 11, "teams": 2, "reps_per_team": 3, "months": 3}
PAGE = 50


def credentials(kind: str, url: str) -> dict[str, str]:
    """OAuth where the CRM uses it, so token expiry and refresh are exercised end to end."""
    return {
        "hubspot": {
            "client_id": "qg",
            "client_secret": "s",
            "refresh_token": "sandbox-refresh",
            "access_token": "sandbox-token",
        },
        "salesforce": {
            "client_id": "qg",
            "client_secret": "s",
            "refresh_token": "sandbox-refresh",
            "access_token": "sandbox-token",
            "login_url": url,
        },
        "pipedrive": {
            "client_id": "qg",
            "client_secret": "s",
            "refresh_token": "sandbox-refresh",
            "access_token": "sandbox-token",
            "token_url": f"{url}/oauth/token",
        },
    }[kind]


def source_config(kind: str) -> dict[str, Any]:
    """The sandbox has no search limit: HubSpot searches unpaced (real portals are paced)."""
    return {"search_interval": 0} if kind == "hubspot" else {}


@pytest.fixture(autouse=True)
def _sandboxes_on_loopback(settings):
    settings.source_allow_private_destinations = True  # the sandbox CRMs listen on loopback


@pytest.fixture(params=KINDS)
def sandbox(request):
    state = sandbox_state(**DEMO)
    app = registry.sandbox_app(request.param, state, page_size=PAGE)
    with ServerThread(app) as server:
        yield request.param, server.url, state


def add_source(session_factory, settings, kind: str, url: str, name: str | None = None) -> int:
    with transaction(session_factory) as session:
        source = Source(
            kind=kind,
            name=name or f"{kind}-sandbox",
            base_url=url,
            credentials_encrypted=secrets.encrypt(settings, credentials(kind, url)),
            config=source_config(kind),
        )
        session.add(source)
        session.flush()
        return source.id


def sync(session_factory, settings, source_id: int) -> SyncRun:
    run = engine.run_sync(
        session_factory=session_factory,
        settings=settings,
        source_id=source_id,
        sleep=lambda s: time.sleep(min(s, 1.5)),
    )
    assert run.status == "succeeded", run.error
    return run


def stored(session, source_id: int) -> dict[str, tuple]:
    rows = session.execute(
        select(Deal.external_id, Deal.amount, Deal.status, Deal.is_deleted).where(
            Deal.source_id == source_id
        )
    ).all()
    return {r.external_id: (round(r.amount or 0, 2), r.status, r.is_deleted) for r in rows}


def admin(url: str, path: str, body: dict | None = None) -> dict:
    return httpx.post(f"{url}/_sandbox/{path}", json=body or {}, timeout=10).json()


def test_clean_sync_then_no_change_writes_nothing(session_factory, settings, session, sandbox):
    kind, url, state = sandbox
    sid = add_source(session_factory, settings, kind, url)
    first = sync(session_factory, settings, sid)
    deals = stored(session, sid)
    assert len(deals) == len(state.data.deals)  # live and deleted, each exactly once
    assert sum(d[2] for d in deals.values()) == int(state.data.deals["is_deleted"].sum())
    n_acts = session.scalar(
        select(func.count()).select_from(Activity).where(Activity.source_id == sid)
    )
    assert n_acts == len(state.data.activities)
    assert first.inserted == len(deals) + n_acts and first.pages > 3
    second = sync(session_factory, settings, sid)
    assert (second.inserted, second.updated, second.deleted) == (0, 0, 0)
    # changes made in the CRM arrive incrementally
    touched = admin(url, "touch", {"count": 5})["touched"]
    third = sync(session_factory, settings, sid)
    assert third.updated >= 5 and third.inserted == 0
    after = stored(session, sid)
    assert len(after) == len(deals)
    changed = {k for k in after if after[k][0] != deals[k][0]}
    assert len(changed) == 5 and len(touched) == 5


def test_faults_end_with_the_same_records_as_a_clean_sync(
    session_factory, settings, session, sandbox
):
    kind, url, _ = sandbox
    clean = add_source(session_factory, settings, kind, url, name="clean")
    sync(session_factory, settings, clean)
    expected = stored(session, clean)
    faulty = add_source(session_factory, settings, kind, url, name="faulty")
    admin(url, "faults", {"status": 503, "count": 3})
    admin(url, "faults", {"malformed": 1})
    admin(url, "faults", {"rate_limit": 40, "window": 1.0})
    admin(url, "expire-tokens")
    run = sync(session_factory, settings, faulty)
    assert run.pages > 3
    assert stored(session, faulty) == expected
    # the faults really fired: the 503s, the malformed page and the expired token were retried
    faulted = session.scalar(select(Source).where(Source.id == faulty))
    assert secrets.decrypt(settings, faulted.credentials_encrypted)["access_token"] != (
        "sandbox-token"
    )  # refreshed, and the new token stored


def test_records_changed_while_paging_are_not_lost(session_factory, settings, session, sandbox):
    kind, url, state = sandbox
    sid = add_source(session_factory, settings, kind, url)
    admin(url, "faults", {"mutate_after": 2, "mutate_count": 20})
    sync(session_factory, settings, sid)
    sync(session_factory, settings, sid)  # the next run picks up what moved behind the cursor
    got = stored(session, sid)
    assert len(got) == len(state.data.deals)
    # every stored amount is the CRM's current one, the 20 changed mid-run included
    assert sorted(v[0] for v in got.values()) == sorted(
        round(a, 2) for a in state.data.deals["amount"]
    )


def test_one_person_in_two_crms_is_one_rep(session_factory, settings, session, client, factory):
    kinds = ("hubspot", "pipedrive")
    with (
        ServerThread(registry.sandbox_app(kinds[0], sandbox_state(**DEMO), page_size=PAGE)) as a,
        ServerThread(registry.sandbox_app(kinds[1], sandbox_state(**DEMO), page_size=PAGE)) as b,
    ):
        for kind, server in zip(kinds, (a, b), strict=True):
            sync(session_factory, settings, add_source(session_factory, settings, kind, server.url))
    reps = client.get("/api/v1/reps", params={"limit": 500}, headers=factory.key("admin")).json()[
        "items"
    ]
    emails = [r["email"] for r in reps if r["email"]]
    assert len(emails) == len(set(emails)) and emails
    both = [r for r in reps if len({i["source_id"] for i in r["identities"]}) == 2]
    assert len(both) == len(emails)  # everyone is known to both CRMs, once


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_mid_sync_then_rerun_has_every_record_once(fresh_url, settings, kind):
    state = sandbox_state(**DEMO)
    db = open_engine(fresh_url)
    upgrade(db)
    factory = make_sessionmaker(db)
    tuned = settings.model_copy(update={"database_url": fresh_url})
    with ServerThread(registry.sandbox_app(kind, state, page_size=10)) as server:
        sid = add_source(factory, tuned, kind, server.url)
        admin(server.url, "faults", {"rate_limit": 8, "window": 1.0})  # slow enough to kill
        env = {
            **os.environ,
            "QG_DATABASE_URL": fresh_url,
            "QG_SECRET_KEY": TEST_SECRET_KEY,
            "QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS": "true",
            "PYTHONPATH": str(ROOT),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "sync",
                str(sid),
                "--no-compute",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Killed once the first records are stored. Not after a number of pages: the writer
        # stores a stream's pages in batches of thousands of records, so here a whole stream
        # lands in one commit, and a page count may first show in the run's last one.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with factory() as s:
                stored = s.scalar(select(func.count()).select_from(Deal)) + s.scalar(
                    select(func.count()).select_from(Activity)
                )
            if stored:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with factory() as s:
            partial = s.scalar(select(func.count()).select_from(Deal)) + s.scalar(
                select(func.count()).select_from(Activity)
            )
            killed = s.scalar(select(SyncRun).where(SyncRun.source_id == sid))
        assert killed.status == "running"  # it never got to say anything
        assert partial < len(state.data.deals) + len(state.data.activities)  # truly mid-sync
        admin(server.url, "reset")
        # Re-run at once, as an operator would: the killed process's sync lease is taken
        # (same host, process gone) instead of "already running" for its TTL.
        cli = [sys.executable, "-c", "from app.cli import main; main()"]
        rerun = subprocess.run(
            [*cli, "sync", str(sid), "--no-compute"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Deal)) == len(state.data.deals)
        assert s.scalar(select(func.count(func.distinct(Deal.external_id)))) == len(
            state.data.deals
        )
        assert s.scalar(select(func.count()).select_from(Activity)) == len(state.data.activities)
        runs = s.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        assert runs[0].status == "failed" and "interrupted" in runs[0].error
        cursor = s.get(SyncCursor, (sid, "deals"))
        assert cursor is not None
        stamp = datetime.fromisoformat(cursor.value.replace("Z", "+00:00"))
        assert stamp <= runs[-1].finished_at
        assert s.scalar(select(func.count()).select_from(Rep)) > 0
    db.dispose()


def test_records_of_an_owner_added_later_leave_quarantine(
    session_factory, settings, session, sandbox
):
    """Deals and activities read before their owner exists are quarantined ("unknown owner");
    once a later sync reads the owner, they are stored, although the CRM did not change them
    (their cursor was passed long ago)."""
    kind, url, state = sandbox
    reps = state.data.reps
    late = reps[reps["rep_key"].isin(state.data.deals["owner_key"])].iloc[0]
    kept = reps[reps["rep_key"] != late["rep_key"]].reset_index(drop=True)
    state.data = dataclasses.replace(state.data, reps=kept)
    sid = add_source(session_factory, settings, kind, url)
    first = sync(session_factory, settings, sid)
    owned_deals = int((state.data.deals["owner_key"] == late["rep_key"]).sum())
    owned_acts = int((state.data.activities["owner_key"] == late["rep_key"]).sum())
    assert first.quarantined == owned_deals + owned_acts > 0
    quarantined = session.scalars(
        select(QuarantinedRecord.reason).where(QuarantinedRecord.source_id == sid)
    ).all()
    assert all(r.startswith("unknown owner") for r in quarantined)

    # The user is added in the CRM (created now, so an incremental read of users sees it).
    joined = late.copy()
    joined["start_date"] = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    back = pd.concat([kept, joined.to_frame().T], ignore_index=True).astype(reps.dtypes.to_dict())
    state.data = dataclasses.replace(state.data, reps=back)
    second = sync(session_factory, settings, sid)

    # (The few the second sync read again, within its lookback, were stored by the sync.)
    assert (
        owned_deals + owned_acts - second.fetched <= second.details["replayed"] <= first.quarantined
    )
    session.expire_all()
    left = session.scalar(
        select(func.count())
        .select_from(QuarantinedRecord)
        .where(QuarantinedRecord.source_id == sid)
    )
    assert left == 0
    assert len(stored(session, sid)) == len(state.data.deals)
    n_acts = session.scalar(
        select(func.count()).select_from(Activity).where(Activity.source_id == sid)
    )
    assert n_acts == len(state.data.activities)


def test_a_spent_api_budget_pauses_the_sync_and_the_job(session_factory, settings, session):
    """Salesforce says 500 calls are left of the day's 100,000 (Sforce-Limit-Info): the sync
    stops as "paused: daily API budget" instead of sleeping for minutes per call; the job says
    so (not a failure), what was read is computed, and the source's health is untouched."""
    from app.pipeline.jobs import service as jobs_service

    state = sandbox_state(**DEMO)
    app = registry.sandbox_app("salesforce", state, page_size=PAGE)
    with ServerThread(app) as server:
        sid = add_source(session_factory, settings, "salesforce", server.url)
        state.requests = 99_500
        with transaction(session_factory) as s:
            job = jobs_service.create(session=s, kind="sync", source_id=sid, trigger="api")
            job_id = job.id
        done = jobs_service.run(session_factory=session_factory, settings=settings, job_id=job_id)

    assert done.status == "paused", done.error
    assert done.error.startswith("paused: daily API budget (")
    assert done.result["sync"]["status"] == "paused" and "compute" in done.result
    session.expire_all()
    source = session.get(Source, sid)
    assert source.consecutive_failures == 0 and source.last_error is None


def test_pipedrive_deals_archived_in_the_crm_leave_the_pipeline(session_factory, settings, session):
    """Pipedrive's v2 /deals no longer lists a deal once it is archived: the next sync reads
    it from /deals/archived. An archived open deal leaves the pipeline (deleted); an archived
    won deal stays won."""
    state = sandbox_state(**DEMO)
    app = registry.sandbox_app("pipedrive", state, page_size=PAGE)
    with ServerThread(app) as server:
        sid = add_source(session_factory, settings, "pipedrive", server.url)
        sync(session_factory, settings, sid)
        deals = state.data.deals
        live = ~deals["is_deleted"].astype(bool)
        open_row = deals.index[(live & deals["status"].eq("open")).to_numpy()][0]
        won_row = deals.index[(live & deals["status"].eq("won")).to_numpy()][0]
        with state.lock:
            deals["is_archived"] = False
            deals.loc[[open_row, won_row], "is_archived"] = True
            deals.loc[[open_row, won_row], "modified_at"] = pd.Timestamp.now(tz="UTC")
            state.version += 1
        second = sync(session_factory, settings, sid)

    assert second.updated >= 2
    after = stored(session, sid)

    # Pipedrive's ids are the demo keys' numbers ("D000042" -> 42).
    def pipedrive_id(row: int) -> str:
        return str(int(str(deals.loc[row, "external_id"]).lstrip("D")))

    assert after[pipedrive_id(open_row)][1:] == ("open", True)
    assert after[pipedrive_id(won_row)][1:] == ("won", False)


def test_pipedrive_activities_deleted_in_the_crm_are_marked_deleted(
    session_factory, settings, session
):
    """A deleted Pipedrive activity leaves v2 /activities without a trace; the next sync finds
    it in /v1/recents (data: null) and marks the stored one deleted, so it stops counting."""
    state = sandbox_state(**DEMO)
    app = registry.sandbox_app("pipedrive", state, page_size=PAGE)
    with ServerThread(app) as server:
        sid = add_source(session_factory, settings, "pipedrive", server.url)
        sync(session_factory, settings, sid)
        acts = state.data.activities
        with state.lock:
            acts["is_deleted"] = False
            acts.loc[acts.index[:3], "is_deleted"] = True
            acts.loc[acts.index[:3], "modified_at"] = pd.Timestamp.now(tz="UTC")
            state.version += 1
        second = sync(session_factory, settings, sid)
        third = sync(session_factory, settings, sid)

    gone = {str(int(str(k).lstrip("A"))) for k in acts.loc[acts.index[:3], "external_id"]}
    session.expire_all()
    flags = dict(
        session.execute(
            select(Activity.external_id, Activity.is_deleted).where(Activity.source_id == sid)
        ).all()
    )
    assert {k for k, deleted in flags.items() if deleted} == gone
    assert second.updated + second.deleted >= 3
    assert (third.updated, third.deleted) == (0, 0)  # marked once


def test_hubspot_activity_reassociated_to_a_deal_follows_it(session_factory, settings, session):
    """HubSpot: a call associated to another deal keeps its hs_lastmodifieddate; the deal it
    moved to changed. The next sync stores the call's new deal; a sync after that, with no
    change, writes nothing. Deals carry their company's name."""
    state = sandbox_state(**DEMO)
    app = registry.sandbox_app("hubspot", state, page_size=PAGE)
    with ServerThread(app) as server:
        sid = add_source(session_factory, settings, "hubspot", server.url)
        sync(session_factory, settings, sid)
        acts, deals = state.data.activities, state.data.deals
        old = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)
        row = acts.index[(acts["deal_external_id"].isna() & (acts["modified_at"] < old)).to_numpy()]
        row = row[0]
        target = deals.index[~deals["is_deleted"].to_numpy()][0]
        with state.lock:
            acts.loc[row, "deal_external_id"] = deals.loc[target, "external_id"]
            deals.loc[target, "modified_at"] = pd.Timestamp.now(tz="UTC")
            state.version += 1
        second = sync(session_factory, settings, sid)
        third = sync(session_factory, settings, sid)

    session.expire_all()
    stored_deal = session.scalar(
        select(Activity.deal_external_id).where(
            Activity.source_id == sid,
            Activity.external_id == hubspot_id(acts.loc[row, "external_id"]),
        )
    )
    assert stored_deal == hubspot_id(deals.loc[target, "external_id"])
    assert second.updated >= 2  # the deal and the call
    assert (third.inserted, third.updated, third.deleted) == (0, 0, 0)
    accounts = dict(
        session.execute(select(Deal.external_id, Deal.account).where(Deal.source_id == sid)).all()
    )
    assert accounts == {
        hubspot_id(k): a for k, a in zip(deals["external_id"], deals["account"], strict=True)
    }


def crm_id(kind: str, key: str, activity_type: str | None = None) -> str:
    """The id a sandbox CRM gives the demo record ``key`` (a deal, or an activity of a type)."""
    from connectors.sandbox.salesforce import sf_ids

    if kind == "hubspot":
        return hubspot_id(key)
    if kind == "pipedrive":
        return str(int(key[1:]))
    obj = (
        "Opportunity"
        if activity_type is None
        else "Event"
        if activity_type == "meeting"
        else "Task"
    )
    return str(sf_ids(obj, pd.Series([key]))[0])


@pytest.mark.parametrize("kind", KINDS)
def test_an_activity_moved_to_another_deal_follows_it(session_factory, settings, session, kind):
    """Salesforce and Pipedrive stamp the activity whose deal changed: the next sync follows.
    HubSpot stamps neither the activity nor (always) the deals: the incremental sync cannot
    see it, and the full resync (scheduled every 7 days by default) picks it up."""
    state = sandbox_state(**DEMO)
    with ServerThread(registry.sandbox_app(kind, state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, kind, server.url)
        sync(session_factory, settings, sid)
        acts, deals = state.data.activities, state.data.deals
        # Neither changed lately: nothing a sync re-reads anyway brings the change in.
        old = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)
        linked = acts.index[(acts["deal_external_id"].notna() & (acts["modified_at"] < old))]
        row = linked[0]
        live = deals.index[(~deals["is_deleted"].astype(bool) & (deals["modified_at"] < old))]
        target = next(
            d for d in live if deals.loc[d, "external_id"] != acts.loc[row, "deal_external_id"]
        )
        with state.lock:
            acts.loc[row, "deal_external_id"] = deals.loc[target, "external_id"]
            if kind != "hubspot":
                acts.loc[row, "modified_at"] = pd.Timestamp.now(tz="UTC")
            state.version += 1
        sync(session_factory, settings, sid)
        activity = crm_id(kind, acts.loc[row, "external_id"], acts.loc[row, "type"])

        def stored_deal() -> str | None:
            session.expire_all()
            return session.scalar(
                select(Activity.deal_external_id).where(
                    Activity.source_id == sid, Activity.external_id == activity
                )
            )

        moved = crm_id(kind, deals.loc[target, "external_id"])
        if kind == "hubspot":
            assert stored_deal() != moved  # invisible to an incremental sync
            run = engine.run_sync(
                session_factory=session_factory, settings=settings, source_id=sid, full=True
            )
            assert run.status == "succeeded", run.error
    assert stored_deal() == moved


@pytest.mark.parametrize("kind", KINDS)
def test_an_account_in_another_zone_and_currency(session_factory, settings, session, kind):
    """An account in California whose currency is EUR: a deal won at 21:30 on 31 March there
    (1 April in UTC) is stored on 31 March by every CRM (HubSpot by its portal's zone,
    Pipedrive by its company-local date, Salesforce's CloseDate being a date already), and
    amounts without a currency of their own are in EUR, not USD."""
    state = sandbox_state(**DEMO)
    state.timezone, state.currency = "America/Los_Angeles", "EUR"
    deals = state.data.deals
    won = deals.index[(deals["status"].eq("won") & ~deals["is_deleted"].astype(bool)).to_numpy()]
    late = won[0]
    deals.loc[late, "closed_at"] = pd.Timestamp("2026-04-01T04:30:00Z")
    deals.loc[late, "close_date"] = datetime(2026, 3, 31).date()  # the rep's day, in their zone
    deals.loc[deals.index[:3], "currency"] = "EUR"
    # A single-currency Salesforce org: its amounts carry no CurrencyIsoCode at all.
    options = {"multi_currency": False} if kind == "salesforce" else {}
    with ServerThread(registry.sandbox_app(kind, state, page_size=PAGE, **options)) as server:
        sid = add_source(session_factory, settings, kind, server.url)
        sync(session_factory, settings, sid)
    stored = {d.external_id: d for d in session.scalars(select(Deal).where(Deal.source_id == sid))}
    assert (
        stored[crm_id(kind, deals.loc[late, "external_id"])].close_date
        == datetime(2026, 3, 31).date()
    )
    for row in deals.to_dict("records"):
        deal = stored[crm_id(kind, row["external_id"])]
        assert deal.currency == ("EUR" if kind == "salesforce" else row["currency"])


def test_a_run_whose_database_blinks_at_the_end_still_records_its_outcome(
    session_factory, settings, session, monkeypatch
):
    """The run's outcome write meets a lost connection twice: it is written once the database
    answers again, not left "running" for the next run to call interrupted."""
    from sqlalchemy.exc import OperationalError

    state = sandbox_state(**DEMO)
    real_close = engine._close_run
    failures: list[int] = []

    def flaky_close(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError(
                "UPDATE sync_runs", {}, Exception("server closed the connection")
            )
        return real_close(*args, **kwargs)

    monkeypatch.setattr(engine, "_close_run", flaky_close)
    monkeypatch.setattr(engine.time, "sleep", lambda _: None)
    with ServerThread(registry.sandbox_app("pipedrive", state, page_size=PAGE)) as server:
        sid = add_source(session_factory, settings, "pipedrive", server.url)
        run = sync(session_factory, settings, sid)
    assert len(failures) == 2 and run.status == "succeeded" and run.finished_at is not None
