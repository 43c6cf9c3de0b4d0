"""The Salesforce connector against the sandbox Salesforce on a real socket."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
import pandas as pd
import pytest

from app.demo.generator import DemoConfig, DemoData, generate
from connectors.base import Page
from connectors.http import CrmAuthError
from connectors.salesforce import SalesforceConnector, build_client
from connectors.sandbox.common import SandboxState, ServerThread
from connectors.sandbox.salesforce import create_app, sf_ids

# Yesterday: the demo's stamps run to the end of its "today"; a sandbox touch stamps "now",
# which must be later than every seeded stamp for incremental reads to see it.
TODAY = datetime.now(UTC).date() - timedelta(days=1)
PAGE_SIZE = 40


@cache
def _demo() -> DemoData:
    return generate(DemoConfig(seed=5, today=TODAY, teams=2, reps_per_team=3, months=4))


def fresh_state() -> SandboxState:
    """A private copy of the (cached) demo data: sandbox faults and touches mutate it."""
    data = _demo()
    frames = {f.name: getattr(data, f.name).copy() for f in dataclasses.fields(data)}
    return SandboxState(data=DemoData(**frames), seed=5)


class Sandbox:
    def __init__(self, state: SandboxState, server: ServerThread) -> None:
        self.state = state
        self.url = server.url
        self.waits: list[float] = []
        self.refreshed: list[dict[str, Any]] = []

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return httpx.post(f"{self.url}/_sandbox/{path}", json=body or {}).json()

    def connector(self, *, real_sleep: bool = False, **credentials: Any) -> SalesforceConnector:
        def sleep(seconds: float) -> None:
            self.waits.append(seconds)
            if real_sleep:
                time.sleep(seconds)

        creds = {
            "client_id": "quotagap",
            "refresh_token": "sandbox-refresh",
            "access_token": "sandbox-token",
            "login_url": self.url,
            **credentials,
        }
        client = build_client(
            base_url=self.url, credentials=creds, on_refresh=self.refreshed.append, sleep=sleep
        )
        return SalesforceConnector(client)


def _serve(state: SandboxState, **options: Any) -> Iterator[Sandbox]:
    with ServerThread(create_app(state, page_size=PAGE_SIZE, **options)) as server:
        yield Sandbox(state, server)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    yield from _serve(fresh_state())


def read(conn: SalesforceConnector, name: str, since: datetime | None = None) -> list[Page]:
    stream = next(s for s in conn.streams() if s.name == name)
    return list(stream.pages(since))


def records(pages: list[Page]) -> list[dict[str, Any]]:
    assert not [r for p in pages for r in p.rejects]
    return [r for p in pages for r in p.records]


def by_id(pages: list[Page]) -> dict[str, dict[str, Any]]:
    out = {r["external_id"]: r for r in records(pages)}
    assert len(out) == sum(len(p.records) for p in pages), "a record was served twice"
    return out


def parse(cursor: str | None) -> datetime:
    assert cursor is not None
    return datetime.fromisoformat(cursor.replace("Z", "+00:00"))


def expected_deals(state: SandboxState) -> dict[str, float]:
    d = state.data.deals
    return dict(zip(sf_ids("Opportunity", d["external_id"]), d["amount"], strict=True))


# ------------------------------------------------------------------ full and incremental


def test_full_read_returns_every_record_once(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    data = sandbox.state.data

    owners = by_id(read(conn, "owners"))
    reps = data.reps
    ids = sf_ids("User", reps["rep_key"])
    managers = sf_ids("User", reps["manager_key"]).astype(object).where(reps["manager_key"].notna())
    assert owners.keys() == set(ids)
    for ident, email, manager, active in zip(
        ids, reps["email"], managers, reps["is_active"], strict=True
    ):
        owner = owners[ident]
        assert owner["email"] == email and owner["is_active"] == bool(active)
        assert owner["manager_external_id"] == (None if pd.isna(manager) else manager)

    deal_pages = read(conn, "deals")
    assert len(deal_pages) == -(-len(data.deals) // PAGE_SIZE)
    deals = by_id(deal_pages)
    frame = data.deals.assign(
        Id=sf_ids("Opportunity", data.deals["external_id"]),
        OwnerId=sf_ids("User", data.deals["owner_key"]),
    )
    assert deals.keys() == set(frame["Id"])
    for row in frame.to_dict("records"):
        deal = deals[row["Id"]]
        assert deal["owner_external_id"] == row["OwnerId"]
        assert (deal["amount"], deal["currency"], deal["status"], deal["stage"]) == (
            row["amount"],
            row["currency"],
            row["status"],
            row["stage"],
        )
        assert deal["probability"] == pytest.approx(row["probability"])
        assert deal["close_date"] == row["close_date"] and deal["account"] == row["account"]
        assert deal["created_at"] == row["created_at"]
        assert deal["is_deleted"] == row["is_deleted"]
        assert deal["source_modified_at"] == row["modified_at"]
    assert any(d["is_deleted"] for d in deals.values())

    activity_pages = read(conn, "activities")
    activities = by_id(activity_pages)
    a = data.activities
    meeting = a["type"] == "meeting"
    ids = pd.concat(
        [
            sf_ids("Task", a.loc[~meeting, "external_id"]),
            sf_ids("Event", a.loc[meeting, "external_id"]),
        ]
    )
    assert activities.keys() == set(ids)
    what = sf_ids("Opportunity", a["deal_external_id"]).astype(object)
    expected = a.assign(Id=ids.reindex(a.index), WhatId=what.where(what.notna(), None))
    for row in expected.to_dict("records"):
        activity = activities[row["Id"]]
        assert activity["type"] == row["type"] and activity["occurred_at"] == row["occurred_at"]
        assert activity["deal_external_id"] == row["WhatId"]
    # Tasks and Events are merged into one SystemModstamp order: cursors never go back.
    cursors = [parse(p.cursor) for p in activity_pages]
    assert cursors == sorted(cursors)
    assert cursors[-1] == a["modified_at"].max()


def test_incremental_read_since_a_cursor(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    pages = read(conn, "deals")
    since = parse(pages[len(pages) // 2].cursor)
    later = by_id(read(conn, "deals", since))
    d = sandbox.state.data.deals
    # The SOQL literal is floored to the second, so >= keeps the cursor's own record.
    newer = d[d["modified_at"] >= since.replace(microsecond=0)]
    assert later.keys() == set(sf_ids("Opportunity", newer["external_id"]))
    assert min(r["source_modified_at"] for r in later.values()) >= since.replace(microsecond=0)


def test_touched_records_appear(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    last = parse(read(conn, "deals")[-1].cursor)
    touched = sandbox.admin("touch", {"count": 5})["touched"]
    changed = by_id(read(conn, "deals", last))
    touched_ids = set(sf_ids("Opportunity", pd.Series(touched)))
    assert touched_ids <= changed.keys()
    # Besides the touched ones only the records stamped at the cursor's second come back.
    assert all(
        r["source_modified_at"] < last + timedelta(seconds=1)
        for i, r in changed.items()
        if i not in touched_ids
    )
    amounts = expected_deals(sandbox.state)
    assert all(changed[i]["amount"] == amounts[i] for i in touched_ids)


# ------------------------------------------------------------------ faults


def baseline_ids(sandbox: Sandbox) -> set[str]:
    d, a = sandbox.state.data.deals, sandbox.state.data.activities
    meeting = a["type"] == "meeting"
    return (
        set(sf_ids("Opportunity", d["external_id"]))
        | set(sf_ids("Task", a.loc[~meeting, "external_id"]))
        | set(sf_ids("Event", a.loc[meeting, "external_id"]))
    )


def read_deals_and_activities(conn: SalesforceConnector) -> set[str]:
    return set(by_id(read(conn, "deals"))) | set(by_id(read(conn, "activities")))


def test_errors_and_malformed_pages_are_retried(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    sandbox.admin("faults", {"status": 503, "count": 2})
    first = read(conn, "deals")
    sandbox.admin("faults", {"malformed": 2})
    sandbox.admin("faults", {"status": 502, "count": 1})
    assert set(by_id(first)) | set(by_id(read(conn, "activities"))) == baseline_ids(sandbox)
    # One request can take both the 502 and a truncation: at least 4 retries, never a refresh.
    assert len(sandbox.waits) >= 4 and sandbox.refreshed == []


def test_rate_limit_is_waited_out(sandbox: Sandbox) -> None:
    conn = sandbox.connector(real_sleep=True)
    sandbox.admin("faults", {"rate_limit": 3, "window": 1.0})
    started = time.monotonic()
    assert set(by_id(read(conn, "deals"))) == set(expected_deals(sandbox.state))
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["rate_limited"] >= 1
    # Waits come from Retry-After (whole seconds), not from the daily-budget pacing.
    assert sandbox.waits and all(0 < w <= 1.0 for w in sandbox.waits)
    assert time.monotonic() - started < 10


def test_expired_tokens_are_refreshed(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    stream = iter(next(s for s in conn.streams() if s.name == "activities").pages(None))
    pages = [next(stream)]
    sandbox.admin("expire-tokens")
    pages.extend(stream)
    ids = set(by_id(pages))
    assert ids == baseline_ids(sandbox) - set(expected_deals(sandbox.state))
    assert len(sandbox.refreshed) == 1
    assert sandbox.refreshed[0]["instance_url"] == sandbox.url
    assert sandbox.refreshed[0]["access_token"].startswith("sandbox-access-")


def test_unknown_refresh_token_is_an_auth_error(sandbox: Sandbox) -> None:
    conn = sandbox.connector(access_token=None, refresh_token="revoked")
    with pytest.raises(CrmAuthError):
        read(conn, "owners")


def test_records_changed_while_paging_are_not_lost(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    sandbox.admin("faults", {"mutate_after": 2, "mutate_count": 30})
    first = read(conn, "deals")
    seen = by_id(first)
    assert seen.keys() == set(expected_deals(sandbox.state))
    # A sync stopped after any page resumes from that page's cursor: nothing after it is lost.
    for i, page in enumerate(first[:-1]):
        resumed = by_id(read(conn, "deals", parse(page.cursor)))
        later = {r["external_id"] for p in first[i + 1 :] for r in p.records}
        assert later <= resumed.keys()
    # The changes themselves come with the next incremental read.
    latest = {**seen, **by_id(read(conn, "deals", parse(first[-1].cursor)))}
    amounts = expected_deals(sandbox.state)
    assert {i: r["amount"] for i, r in latest.items()} == amounts
    assert any(seen[i]["amount"] != amounts[i] for i in seen)


# ------------------------------------------------------------------ sandbox wire format


def test_single_currency_org_falls_back_to_default() -> None:
    for sandbox in _serve(fresh_state(), multi_currency=False):
        client = build_client(base_url=sandbox.url, credentials={"access_token": "sandbox-token"})
        conn = SalesforceConnector(client, {"default_currency": "EUR"})
        deals = records(read(conn, "deals"))
        assert conn.multi_currency is False
        assert {d["currency"] for d in deals} == {"EUR"}


def test_a_single_currency_orgs_currency_is_read_from_the_org() -> None:
    state = fresh_state()
    state.currency = "JPY"
    for sandbox in _serve(state, multi_currency=False):
        client = build_client(base_url=sandbox.url, credentials={"access_token": "sandbox-token"})
        conn = SalesforceConnector(client)
        deals = records(read(conn, "deals"))
        assert conn.multi_currency is False
        assert {d["currency"] for d in deals} == {"JPY"}


def test_wire_format(sandbox: Sandbox) -> None:
    auth = {"Authorization": "Bearer sandbox-token"}
    base = f"{sandbox.url}/services/data/v60.0"

    def get(path: str, q: str, **headers: str) -> httpx.Response:
        return httpx.get(f"{base}/{path}", params={"q": q}, headers={**auth, **headers})

    q = "SELECT Id, IsDeleted, Account.Name FROM Opportunity ORDER BY SystemModstamp"
    live, everything = get("query", q).json(), get("queryAll", q).json()
    deleted = int(sandbox.state.data.deals["is_deleted"].sum())
    assert everything["totalSize"] == live["totalSize"] + deleted and deleted > 0
    assert not any(r["IsDeleted"] for r in live["records"])
    first = live["records"][0]
    assert first["attributes"]["type"] == "Opportunity" and len(first["Id"]) == 18
    assert first["Id"].startswith("006") and first["attributes"]["url"].endswith(first["Id"])
    assert first["Account"]["Name"]
    assert live["nextRecordsUrl"] == f"/services/data/v60.0/query/01g5g0000000001IAA-{PAGE_SIZE}"
    more = httpx.get(f"{sandbox.url}{live['nextRecordsUrl']}", headers=auth)
    assert more.status_code == 200 and more.json()["records"][0]["Id"] != first["Id"]
    assert more.headers["Sforce-Limit-Info"].startswith("api-usage=")

    quoted = get("query", "SELECT Id FROM Task WHERE SystemModstamp >= '2024-01-01T00:00:00Z'")
    assert quoted.status_code == 400
    assert quoted.json()[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"
    missing = get("query", "SELECT Id, Bogus__c FROM Event")
    assert missing.status_code == 400 and missing.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "'Bogus__c'" in missing.json()[0]["message"]
    no_deleted = get("queryAll", "SELECT Id, IsDeleted FROM User")
    assert no_deleted.json()[0]["errorCode"] == "INVALID_FIELD"
    since = get("query", "SELECT Id FROM Event WHERE SystemModstamp >= 2100-01-01T00:00:00Z")
    assert since.json() == {"totalSize": 0, "done": True, "records": []}
    for user in get("query", "SELECT Id, ManagerId FROM User").json()["records"]:
        assert user["Id"].startswith("005") and (user["ManagerId"] or "005").startswith("005")

    denied = get("query", q, Authorization="Bearer nope")
    assert denied.status_code == 401
    assert denied.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    gone = httpx.get(f"{base}/query/01g5g0000000999IAA-40", headers=auth)
    assert gone.status_code == 400 and gone.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"

    token = f"{sandbox.url}/services/oauth2/token"
    bad = httpx.post(token, data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    good = httpx.post(
        token, data={"grant_type": "refresh_token", "refresh_token": "sandbox-refresh"}
    )
    body = good.json()
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(
        body
    )

    sandbox.admin("faults", {"rate_limit": 1, "window": 30.0})
    get("query", q)
    limited = get("query", q)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sandbox.admin("reset")


def test_demo_day_is_yesterday() -> None:
    # Guards the assumption the incremental tests rest on.
    assert _demo().deals["modified_at"].max() < datetime.now(UTC)


def test_a_large_read_comes_in_bounded_chunks_that_skip_and_repeat_nothing(sandbox):
    """Each query reads at most ``query_chunk`` records and the next starts after the last
    one by (SystemModstamp, Id), so no query cursor outlives its chunk; many records sharing
    one stamp across a chunk boundary are neither skipped nor read twice, and tasks and events
    stay merged in one stamp order."""
    acts = sandbox.state.data.activities
    with sandbox.state.lock:
        # A bulk update: 450 activities stamped in the same second.
        acts.loc[acts.index[:450], "modified_at"] = pd.Timestamp("2026-06-01T10:00:00Z")
        sandbox.state.version += 1
    whole = by_id(read(sandbox.connector(), "activities"))
    conn = sandbox.connector()
    conn.chunk = 200
    queries: list[str] = []
    original = conn.client.get_json

    def spy(url: str, **kwargs: Any) -> Any:
        if "q" in (kwargs.get("params") or {}):
            queries.append(kwargs["params"]["q"])
        return original(url, **kwargs)

    conn.client.get_json = spy  # type: ignore[method-assign]
    pages = read(conn, "activities")
    assert by_id(pages) == whole  # by_id fails on a record served twice
    tasks = [q for q in queries if "FROM Task" in q]
    assert len(whole) > 1000 and len(tasks) >= 3
    assert all(q.endswith("LIMIT 200") for q in queries)
    assert "SystemModstamp = 2026-06-01T10:00:00Z AND Id > '" in "".join(tasks)
    assert all(p.total is None for p in pages)  # a query with LIMIT counts at most its limit
    stamps = [parse(p.cursor) for p in pages if p.cursor]
    assert stamps == sorted(stamps)
