"""The sync engine's guarantees, with an in-memory connector (the CRM modules have their own
tests against respx and the sandbox servers)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import object_session

from app.core import secrets
from app.deals.models import Deal
from app.pipeline import sync as engine
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from connectors import registry
from connectors.base import Connector, Page, Reject, Stream, iso
from connectors.http import CrmClient

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _deal(n: int, owner: str = "u1", modified: datetime | None = None, **kw) -> dict:
    return {
        "external_id": f"d{n}",
        "owner_external_id": owner,
        "name": f"Deal {n}",
        "account": None,
        "amount": 100.0 * n,
        "currency": "USD",
        "stage": "won",
        "pipeline": "default",
        "probability": 1.0,
        "status": "won",
        "created_at": T0 - timedelta(days=10),
        "close_date": date(2026, 11, 1),
        "closed_at": T0,
        "source_modified_at": modified or T0 + timedelta(minutes=n),
        "is_deleted": False,
        **kw,
    }


class FakeCrm:
    """Records held in memory; pages of 2 in cursor order, honouring `since` with >=."""

    def __init__(self) -> None:
        self.owners = [
            {
                "external_id": "u1",
                "name": "Ann Lee",
                "email": "ann@x.com",
                "is_active": True,
                "manager_external_id": "u9",
                "team_name": "East",
            },
            {
                "external_id": "u9",
                "name": "Max Boss",
                "email": "max@x.com",
                "is_active": True,
                "manager_external_id": None,
                "team_name": "East",
            },
        ]
        self.deals = [_deal(n) for n in range(1, 6)]
        self.rejects = [Reject("bad1", "bad amount: 'lots'", {"id": "bad1", "amount": "lots"})]
        self.fail_after_pages: int | None = None
        self.pages_served = 0
        self.since_seen: list[datetime | None] = []

    def stream_pages(self, records, since, cursor_key):
        self.since_seen.append(since)
        chosen = sorted(
            (r for r in records if since is None or r[cursor_key] >= since),
            key=lambda r: r[cursor_key],
        )
        for i in range(0, len(chosen), 2):
            if self.fail_after_pages is not None and self.pages_served >= self.fail_after_pages:
                raise ConnectionError("killed mid-sync")
            self.pages_served += 1
            chunk = chosen[i : i + 2]
            page = Page(
                records=[dict(r) for r in chunk],
                fetched=len(chunk),
                cursor=iso(max(r[cursor_key] for r in chunk)),
            )
            if i == 0 and cursor_key == "source_modified_at":
                page.rejects = list(self.rejects)
                page.fetched += len(self.rejects)
            yield page


class FakeConnector(Connector):
    kind = "fake"

    def __init__(self, crm: FakeCrm) -> None:
        super().__init__(CrmClient("http://fake.invalid"))
        self.crm = crm

    def streams(self) -> list[Stream]:
        crm = self.crm

        class Owners(Stream):
            name = "owners"
            cursor_field = "modified"

            def pages(self, since: datetime | None) -> Iterator[Page]:
                yield Page(records=[dict(o) for o in crm.owners], fetched=len(crm.owners))

        class Deals(Stream):
            name = "deals"
            cursor_field = "source_modified_at"

            def pages(self, since: datetime | None) -> Iterator[Page]:
                yield from crm.stream_pages(crm.deals, since, "source_modified_at")

        return [Owners(), Deals()]


@pytest.fixture
def crm(monkeypatch):
    fake = FakeCrm()
    monkeypatch.setattr(registry, "connector_for", lambda kind, **kw: FakeConnector(fake))
    return fake


@pytest.fixture
def source(session, settings, tmp_path):
    src = Source(
        kind="hubspot",
        name="fake",
        credentials_encrypted=secrets.encrypt(settings, {"access_token": "s3cr3t"}),
    )
    session.add(src)
    session.flush()
    return src


def _sync(session_factory, settings, source, **kw):
    run = engine.run_sync(
        session_factory=session_factory, settings=settings, source_id=source.id, **kw
    )
    # the engine wrote through its own sessions: forget what the test session cached
    object_session(source).expire_all()
    return run


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_sync_loads_owners_deals_and_quarantines_rejects(
    session, session_factory, settings, source, crm
):
    run = _sync(session_factory, settings, source)
    assert run.status == "succeeded", run.error
    assert (run.inserted, run.updated, run.quarantined, run.pages) == (5, 0, 1, 4)
    assert _count(session, Deal, Deal.source_id == source.id) == 5
    ann = session.scalar(select(Rep).where(Rep.email == "ann@x.com"))
    boss = session.scalar(select(Rep).where(Rep.email == "max@x.com"))
    assert ann.manager_id == boss.id and boss.role == "manager" and ann.team.name == "East"
    q = session.scalar(select(QuarantinedRecord))
    assert (q.external_id, q.reason, q.payload["amount"]) == ("bad1", "bad amount: 'lots'", "lots")
    cursor = session.get(SyncCursor, (source.id, "deals"))
    assert cursor.value == iso(T0 + timedelta(minutes=5))
    assert session.get(Source, source.id).last_success_at is not None


def test_rerun_reads_from_cursor_minus_lookback_and_writes_nothing(
    session, session_factory, settings, source, crm
):
    _sync(session_factory, settings, source)
    again = _sync(session_factory, settings, source)
    assert crm.since_seen[-1] == T0 + timedelta(minutes=5) - engine.LOOKBACK
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert _count(session, Deal) == 5


def test_unknown_owner_is_quarantined_and_released_once_known(
    session, session_factory, settings, source, crm
):
    crm.deals.append(_deal(6, owner="u404"))
    run = _sync(session_factory, settings, source)
    assert run.quarantined == 2
    assert _count(session, QuarantinedRecord, QuarantinedRecord.external_id == "d6") == 1
    crm.owners.append(
        {
            "external_id": "u404",
            "name": "New Hire",
            "email": "new@x.com",
            "is_active": True,
            "manager_external_id": None,
            "team_name": None,
        }
    )
    crm.deals[-1]["source_modified_at"] = T0 + timedelta(hours=1)
    _sync(session_factory, settings, source)
    assert _count(session, QuarantinedRecord, QuarantinedRecord.external_id == "d6") == 0
    assert _count(session, Deal, Deal.external_id == "d6") == 1


def test_crash_mid_sync_resumes_and_ends_with_every_record_once(
    session, session_factory, settings, source, crm
):
    crm.fail_after_pages = 1
    failed = _sync(session_factory, settings, source)
    assert failed.status == "failed" and "killed mid-sync" in failed.error
    assert _count(session, Deal) == 2  # the first page landed whole, with its cursor
    assert session.get(SyncCursor, (source.id, "deals")).value == iso(T0 + timedelta(minutes=2))
    assert session.get(Source, source.id).consecutive_failures == 1
    crm.fail_after_pages = None
    ok = _sync(session_factory, settings, source)
    assert ok.status == "succeeded"
    assert _count(session, Deal) == 5
    assert session.scalar(select(func.count(func.distinct(Deal.external_id)))) == 5
    assert session.get(Source, source.id).consecutive_failures == 0


def test_deletes_propagate_and_are_counted(session, session_factory, settings, source, crm):
    _sync(session_factory, settings, source)
    crm.deals[0].update(is_deleted=True, source_modified_at=T0 + timedelta(hours=2))
    run = _sync(session_factory, settings, source)
    assert (run.updated, run.deleted) == (1, 1)
    assert session.scalar(select(Deal.is_deleted).where(Deal.external_id == "d1")) is True


def test_cursor_never_passes_the_run_start(session, session_factory, settings, source, crm):
    future = datetime.now(UTC) + timedelta(days=3)
    crm.deals.append(_deal(7, modified=future))
    _sync(session_factory, settings, source)
    stored = datetime.fromisoformat(
        session.get(SyncCursor, (source.id, "deals")).value.replace("Z", "+00:00")
    )
    assert stored <= datetime.now(UTC)


def test_interrupted_run_is_marked_failed_at_next_start(
    session, session_factory, settings, source, crm
):
    session.add(SyncRun(source_id=source.id, status="running"))
    session.flush()
    _sync(session_factory, settings, source)
    runs = session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
    assert runs[0].status == "failed" and "interrupted" in runs[0].error
    assert runs[1].status == "succeeded"


def test_refreshed_tokens_are_stored_encrypted(
    session, session_factory, settings, source, monkeypatch
):
    def connector_for(kind, *, on_refresh, **kw):
        on_refresh({"access_token": "new-token", "refresh_token": "new-refresh"})
        return FakeConnector(FakeCrm())

    monkeypatch.setattr(registry, "connector_for", connector_for)
    _sync(session_factory, settings, source)
    stored = session.get(Source, source.id).credentials_encrypted
    assert "new-token" not in stored
    assert secrets.decrypt(settings, stored)["access_token"] == "new-token"


def test_a_sync_of_records_before_the_history_horizon_says_what_to_run(
    session, session_factory, settings, source, crm
):
    old = datetime(2019, 3, 5, 9, tzinfo=UTC)
    crm.deals.append(
        _deal(9, created_at=old, close_date=date(2019, 3, 20), closed_at=old + timedelta(days=15))
    )
    run = _sync(session_factory, settings, source)
    assert run.status == "succeeded", run.error
    assert run.details["earliest_day"] <= "2019-03-05"
    [notice] = run.details["notices"]
    assert "before the compute's history horizon" in notice and "QG_HISTORY_MONTHS=" in notice
    # Nothing new the next time: nothing to say.
    again = _sync(session_factory, settings, source)
    assert "notices" not in again.details
