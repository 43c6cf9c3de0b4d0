"""The HubSpot connector against the sandbox HubSpot (a real HTTP server on a socket).

Small demo data and small pages, so every path pages many times; faults come from the
sandbox's own switches. Cursors are handled the way the sync engine handles them: the highest
page cursor, capped at the run's start time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from app.demo.sandbox import sandbox_state
from connectors.base import Page, parse_datetime
from connectors.hubspot import HubSpotConnector, build_client
from connectors.sandbox.common import SandboxState, ServerThread
from connectors.sandbox.hubspot import create_app, hubspot_id

DEMO: dict[str, Any] = {"seed": 5, "teams": 2, "reps_per_team": 3, "months": 4}
PAGE = 20
OAUTH = {
    "client_id": "qg",
    "client_secret": "s",
    "refresh_token": "sandbox-refresh",
    "access_token": "sandbox-token",
}


@pytest.fixture
def sandbox() -> Iterator[tuple[str, SandboxState]]:
    state = sandbox_state(**DEMO)
    with ServerThread(create_app(state, page_size=PAGE)) as server:
        yield server.url, state


def connect(
    url: str,
    *,
    credentials: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
) -> HubSpotConnector:
    client = build_client(
        base_url=url,
        credentials=credentials or {"access_token": "sandbox-token"},
        on_refresh=on_refresh,
        sleep=sleep,
    )
    # The sandbox has no search limit: unpaced (real portals are paced by default).
    return HubSpotConnector(client, {"page_size": 50, "search_interval": 0})


Hooks = dict[tuple[str, int], Callable[[], None]]


def read(
    conn: HubSpotConnector,
    since: datetime | None = None,
    *,
    streams: tuple[str, ...] = ("owners", "deals", "activities"),
    hooks: Hooks | None = None,
) -> dict[str, list[Page]]:
    """Every stream's pages; ``hooks[(stream, n)]`` runs after the n-th page (from 1)."""
    out: dict[str, list[Page]] = {}
    for stream in conn.streams():
        if stream.name not in streams:
            continue
        out[stream.name] = []
        for page in stream.pages(since):
            out[stream.name].append(page)
            hook = (hooks or {}).get((stream.name, len(out[stream.name])))
            if hook is not None:
                hook()
    return out


def by_id(pages: list[Page]) -> dict[str, dict[str, Any]]:
    """Records by external id; the later read of a record wins, as in the engine's upsert."""
    return {r["external_id"]: r for p in pages for r in p.records}


def ids(pages: list[Page]) -> list[str]:
    return [r["external_id"] for p in pages for r in p.records]


def next_since(pages: list[Page], run_start: datetime) -> datetime:
    """The engine's cursor after a run: the highest page cursor, never past the run's start."""
    stamps = [parse_datetime(p.cursor, "cursor") for p in pages if p.cursor]
    return min(max(s for s in stamps if s is not None), run_start)


def hs_ids(keys: pd.Series) -> set[str]:
    return {hubspot_id(str(k)) for k in keys}


def floor_ms(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(values).as_unit("ms").asi8


def post(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.post(f"{url}{path}", json=body or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_full_read_returns_every_record_once(sandbox: tuple[str, SandboxState]) -> None:
    url, state = sandbox
    data = state.data
    run = datetime.now(UTC)

    pages = read(connect(url))

    assert not [r for ps in pages.values() for p in ps for r in p.rejects]
    owners = by_id(pages["owners"])
    assert sorted(ids(pages["owners"])) == sorted(hs_ids(data.reps["rep_key"]))
    teams = dict(zip(data.teams["team_key"], data.teams["name"], strict=True))
    for rep in data.reps.to_dict("records"):
        got = owners[hubspot_id(rep["rep_key"])]
        assert (got["email"], got["name"]) == (rep["email"], rep["name"])
        assert got["is_active"] == bool(rep["is_active"])
        assert got["team_name"] == teams[rep["team_key"]]

    deals = data.deals
    live, deleted = deals[~deals["is_deleted"]], deals[deals["is_deleted"]]
    assert len(deleted) >= 1
    read_deals = ids(pages["deals"])
    assert len(read_deals) == len(set(read_deals)) == len(deals)
    got_deals = by_id(pages["deals"])
    assert {i for i, r in got_deals.items() if not r["is_deleted"]} == hs_ids(live["external_id"])
    assert {i for i, r in got_deals.items() if r["is_deleted"]} == hs_ids(deleted["external_id"])
    for row in deals.to_dict("records"):
        got = got_deals[hubspot_id(row["external_id"])]
        assert got["owner_external_id"] == hubspot_id(row["owner_key"])
        assert (got["amount"], got["currency"]) == (pytest.approx(row["amount"]), row["currency"])
        assert (got["stage"], got["status"], got["pipeline"]) == (
            row["stage"],
            row["status"],
            row["pipeline"],
        )
        assert got["probability"] == pytest.approx(row["probability"])
        assert got["close_date"] == row["close_date"]
        if row["status"] == "open":
            assert got["closed_at"] is None
        else:
            assert got["closed_at"] == row["closed_at"].floor("ms").to_pydatetime()
        assert got["source_modified_at"] == row["modified_at"].floor("ms").to_pydatetime()
        # The company's name: by association reads (search) or inline (archived deals).
        assert got["account"] == row["account"]

    activities = data.activities
    read_activities = ids(pages["activities"])
    assert len(read_activities) == len(set(read_activities)) == len(activities)
    got_activities = by_id(pages["activities"])
    for row in activities.to_dict("records"):
        got = got_activities[hubspot_id(row["external_id"])]
        assert got["type"] == row["type"]
        assert got["owner_external_id"] == hubspot_id(row["owner_key"])
        assert got["occurred_at"] == row["occurred_at"].floor("ms").to_pydatetime()
        link = row["deal_external_id"]
        assert got["deal_external_id"] == (None if pd.isna(link) else hubspot_id(str(link)))
    # Every search page is a safe resume point: cursors only go up.
    for stream in ("deals", "activities"):
        cursors = [parse_datetime(p.cursor, "cursor") or run for p in pages[stream] if p.cursor]
        assert cursors == sorted(cursors)


def test_reading_since_a_cursor_returns_changes_at_or_after_it(
    sandbox: tuple[str, SandboxState],
) -> None:
    url, state = sandbox
    deals, activities = state.data.deals, state.data.activities
    since = pd.Timestamp(deals["modified_at"].sort_values().iloc[len(deals) // 2]).to_pydatetime()
    since_ms = int(pd.Timestamp(since).value // 1_000_000)

    pages = read(connect(url), since, streams=("deals", "activities"))

    changed = deals[floor_ms(deals["modified_at"]) >= since_ms]
    assert 0 < len(changed) < len(deals)
    assert sorted(ids(pages["deals"])) == sorted(hs_ids(changed["external_id"]))
    assert {i for i, r in by_id(pages["deals"]).items() if r["is_deleted"]} == hs_ids(
        changed.loc[changed["is_deleted"], "external_id"]
    )
    recent = activities[floor_ms(activities["modified_at"]) >= since_ms]
    # Plus, read again on pages without a cursor, the activities of the deals that changed
    # (their association may have: hubspot_associations): each activity once.
    live = changed.loc[~changed["is_deleted"], "external_id"]
    linked = activities[activities["deal_external_id"].isin(live)]
    assert len(linked) and not hs_ids(linked["external_id"]) <= hs_ids(recent["external_id"])
    read_ids = ids(pages["activities"])
    assert len(read_ids) == len(set(read_ids))
    assert set(read_ids) == hs_ids(recent["external_id"]) | hs_ids(linked["external_id"])
    extra = hs_ids(linked["external_id"]) - hs_ids(recent["external_id"])
    assert all(p.cursor is None for p in pages["activities"] if set(ids([p])) & extra)


def test_touched_deals_show_up_incrementally(sandbox: tuple[str, SandboxState]) -> None:
    url, state = sandbox
    conn = connect(url)
    run_start = datetime.now(UTC)
    first = read(conn, streams=("deals",))["deals"]
    since = next_since(first, run_start)

    touched = post(url, "/_sandbox/touch", {"count": 5})["touched"]
    second = read(conn, since, streams=("deals",))["deals"]

    got = by_id(second)
    assert hs_ids(pd.Series(touched)) <= set(got)
    # Exactly the deals changed at/after the cursor: the touched ones, plus any the demo
    # dated later today.
    deals = state.data.deals
    since_ms = int(pd.Timestamp(since).value // 1_000_000)
    assert sorted(ids(second)) == sorted(
        hs_ids(deals.loc[floor_ms(deals["modified_at"]) >= since_ms, "external_id"])
    )
    assert len(got) < len(deals)
    amounts = dict(zip(deals["external_id"], deals["amount"], strict=True))
    for key in touched:
        assert got[hubspot_id(key)]["amount"] == pytest.approx(amounts[key])


def test_faults_end_with_the_same_records(sandbox: tuple[str, SandboxState]) -> None:
    url, state = sandbox
    clean = read(connect(url))
    waits: list[float] = []
    refreshed: list[dict[str, Any]] = []

    def short_sleep(seconds: float) -> None:
        # 503s and malformed bodies need no real wait; keep the test fast.
        waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    hooks: Hooks = {
        ("owners", 1): lambda: post(url, "/_sandbox/faults", {"status": 503, "count": 2}),
        ("deals", 2): lambda: post(url, "/_sandbox/faults", {"malformed": 1}),
        ("activities", 3): lambda: post(url, "/_sandbox/expire-tokens"),
    }
    conn = connect(url, credentials=OAUTH, sleep=short_sleep, on_refresh=refreshed.append)
    faulted = read(conn, hooks=hooks)

    for stream in ("owners", "deals", "activities"):
        assert by_id(faulted[stream]) == by_id(clean[stream]), stream
        assert sorted(ids(faulted[stream])) == sorted(ids(clean[stream])), stream
    assert len(waits) >= 3  # two 503s and one malformed page, each retried
    assert [r["access_token"] for r in refreshed] == ["sandbox-access-1"]
    assert state.faults.status_count == 0 and state.faults.malformed == 0


def test_rate_limit_429s_are_retried(sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    clean = read(connect(url), streams=("deals",))
    conn = connect(url)
    # Without the limits hook the client runs straight into the limit and must honour 429s.
    conn.client.limits = None
    post(url, "/_sandbox/faults", {"rate_limit": 5, "window": 0.5})

    limited = read(conn, streams=("deals",))

    assert by_id(limited["deals"]) == by_id(clean["deals"])
    assert httpx.get(f"{url}/_sandbox/stats").json()["rate_limited"] >= 1


def test_limits_hook_paces_below_the_rate_limit(sandbox: tuple[str, SandboxState]) -> None:
    url, state = sandbox
    clean = read(connect(url), streams=("deals",))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    post(url, "/_sandbox/faults", {"rate_limit": 5, "window": 0.5})
    before = state.rate_limited

    paced = read(connect(url, sleep=sleep), streams=("deals",))

    assert by_id(paced["deals"]) == by_id(clean["deals"])
    assert waits and all(w <= 0.5 for w in waits)  # spread over the window, not 429 waits
    assert state.rate_limited == before


def test_records_changed_while_paging_are_not_lost(sandbox: tuple[str, SandboxState]) -> None:
    url, state = sandbox
    conn = connect(url)
    post(url, "/_sandbox/faults", {"mutate_after": 2, "mutate_count": 30})
    run_start = datetime.now(UTC)
    first = read(conn, streams=("deals",))["deals"]
    second = read(conn, next_since(first, run_start), streams=("deals",))["deals"]

    final = by_id(first) | by_id(second)
    deals = state.data.deals
    assert state.faults.mutate_after is None  # the 30 deals were changed mid-read
    assert set(final) == hs_ids(deals["external_id"])
    for row in deals.to_dict("records"):
        got = final[hubspot_id(row["external_id"])]
        assert got["amount"] == pytest.approx(row["amount"])
        assert got["source_modified_at"] == row["modified_at"].floor("ms").to_pydatetime()


def test_unknown_token_gets_hubspots_401(sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    response = httpx.get(
        f"{url}/crm/v3/owners", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_search_offsets_stop_at_ten_thousand(sandbox: tuple[str, SandboxState]) -> None:
    url, _ = sandbox
    headers = {"Authorization": "Bearer sandbox-token"}
    body = {"sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}

    ok = httpx.post(
        f"{url}/crm/v3/objects/calls/search", json=body | {"after": "9999"}, headers=headers
    )
    capped = httpx.post(
        f"{url}/crm/v3/objects/calls/search", json=body | {"after": "10000"}, headers=headers
    )

    assert ok.status_code == 200 and ok.json()["results"] == []
    assert capped.status_code == 400 and capped.json()["category"] == "VALIDATION_ERROR"


def test_a_portal_in_another_zone_and_currency(sandbox: tuple[str, SandboxState]) -> None:
    """A portal in California whose company currency is EUR (account-info): a closed deal is
    counted on its closing day there, an open deal keeps its forecast day, and a deal with a
    blank currency code is in EUR, not USD."""
    url, state = sandbox
    state.timezone, state.currency = "America/Los_Angeles", "EUR"
    deals = state.data.deals
    deals.loc[deals.index[:3], "currency"] = "EUR"
    # Won at 21:30 on 31 March in California: 1 April in UTC.
    late = deals.index[deals["status"].eq("won").to_numpy()][0]
    deals.loc[late, "closed_at"] = pd.Timestamp("2026-04-01T04:30:00Z")
    state.version += 1  # the portal caches what it renders

    got = by_id(read(connect(url), streams=("deals",))["deals"])

    california = ZoneInfo("America/Los_Angeles")
    assert got[hubspot_id(deals.loc[late, "external_id"])]["close_date"] == date(2026, 3, 31)
    for row in deals.to_dict("records"):
        deal = got[hubspot_id(row["external_id"])]
        assert deal["currency"] == row["currency"]
        if row["status"] == "open":
            assert deal["close_date"] == row["close_date"]
            continue
        closed = row["closed_at"].to_pydatetime()
        assert deal["close_date"] == closed.astimezone(california).date()


def test_batch_reads_answer_207_for_inputs_without_associations(
    sandbox: tuple[str, SandboxState],
) -> None:
    url, state = sandbox
    headers = {"Authorization": "Bearer sandbox-token"}
    acts = state.data.activities
    calls = acts[acts["type"] == "call"]
    linked = hubspot_id(calls.loc[calls["deal_external_id"].notna(), "external_id"].iloc[0])
    alone = hubspot_id(calls.loc[calls["deal_external_id"].isna(), "external_id"].iloc[0])

    answer = httpx.post(
        f"{url}/crm/v4/associations/calls/deals/batch/read",
        json={"inputs": [{"id": linked}, {"id": alone}]},
        headers=headers,
    )

    assert answer.status_code == 207
    body = answer.json()
    assert [r["from"]["id"] for r in body["results"]] == [linked]
    (error,) = body["errors"]
    assert (error["category"], error["context"]["fromObjectId"]) == ("OBJECT_NOT_FOUND", [alone])
    assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"

    deal = state.data.deals.iloc[0]
    companies = httpx.post(
        f"{url}/crm/v4/associations/deals/companies/batch/read",
        json={"inputs": [{"id": hubspot_id(deal["external_id"])}]},
        headers=headers,
    ).json()
    (target,) = companies["results"][0]["to"]
    assert {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"} in target[
        "associationTypes"
    ]
    named = httpx.post(
        f"{url}/crm/v3/objects/companies/batch/read",
        json={"properties": ["name"], "inputs": [{"id": str(target["toObjectId"])}, {"id": "1"}]},
        headers=headers,
    )
    assert named.status_code == 207
    assert named.json()["results"][0]["properties"]["name"] == deal["account"]
    assert named.json()["errors"][0]["context"] == {"ids": ["1"]}


def test_an_activity_moved_to_a_changed_deal_follows_it(
    sandbox: tuple[str, SandboxState],
) -> None:
    """A rep logs a call, then creates a deal and associates the call to it: the call does
    not change (HubSpot keeps its hs_lastmodifieddate), the deal does. The next incremental
    read returns the call with its new deal."""
    url, state = sandbox
    conn = connect(url)
    run_start = datetime.now(UTC)
    first = read(conn, streams=("deals", "activities"))
    since = min(next_since(first["deals"], run_start), next_since(first["activities"], run_start))
    acts, deals = state.data.activities, state.data.deals
    old = pd.Timestamp(since) - pd.Timedelta(days=30)
    row = acts.index[(acts["deal_external_id"].isna() & (acts["modified_at"] < old)).to_numpy()][0]
    target = deals.index[~deals["is_deleted"].to_numpy()][0]
    with state.lock:
        acts.loc[row, "deal_external_id"] = deals.loc[target, "external_id"]
        deals.loc[target, "modified_at"] = pd.Timestamp(datetime.now(UTC))
        state.version += 1

    second = read(conn, since, streams=("deals", "activities"))

    moved = by_id(second["activities"])[hubspot_id(acts.loc[row, "external_id"])]
    assert moved["deal_external_id"] == hubspot_id(deals.loc[target, "external_id"])
    page = next(p for p in second["activities"] if moved in p.records)
    assert page.cursor is None  # found by its deal: the activity cursor does not move
