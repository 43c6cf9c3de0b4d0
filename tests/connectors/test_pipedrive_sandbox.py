"""The Pipedrive connector against the sandbox Pipedrive on a real socket: the same records
whatever the faults, nothing lost while records change under the pager."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from app.demo.sandbox import sandbox_state
from connectors.base import Page
from connectors.pipedrive import PipedriveConnector, build_client
from connectors.sandbox.common import SandboxState, ServerThread
from connectors.sandbox.pipedrive import create_app

Records = dict[str, dict[str, Any]]


@dataclass
class Sandbox:
    state: SandboxState
    url: str

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.url}/_sandbox/{path}", json=body or {})
        response.raise_for_status()
        return response.json()

    def connector(
        self,
        *,
        config: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        sleep: Callable[[float], None] | None = None,
        on_refresh: Callable[[dict[str, Any]], None] | None = None,
    ) -> PipedriveConnector:
        client = build_client(
            base_url=self.url,
            credentials=credentials or {"api_token": "sandbox-token"},
            on_refresh=on_refresh,
            sleep=sleep or (lambda _: None),
        )
        return PipedriveConnector(client, {"page_size": 20, **(config or {})})


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # Yesterday as the demo's "today": every update_time is in the past, as in a real CRM,
    # so a record touched now sorts after everything already served.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    state = sandbox_state(
        seed=5, today=yesterday, teams=2, reps_per_team=3, months=4, activity_scale=0.15
    )
    deals = state.data.deals
    # More deletions than the demo's 1%, so the deleted listing has pages of its own.
    deals.loc[deals.index[[3, 10, 20, 40]], "is_deleted"] = True
    with ServerThread(create_app(state, page_size=25)) as server:
        yield Sandbox(state, server.url)


def stream_pages(conn: PipedriveConnector, name: str, since: datetime | None = None) -> list[Page]:
    stream = next(s for s in conn.streams() if s.name == name)
    return list(stream.pages(since))


def latest(pages: list[Page]) -> Records:
    """What an upserting store holds after these pages: the last version of each record."""
    return {r["external_id"]: r for p in pages for r in p.records}


def deal_id(external_id: str) -> str:
    return str(int(external_id[1:]))


def server_deals(state: SandboxState) -> dict[str, tuple[float, bool]]:
    deals = state.data.deals
    return {
        deal_id(ext): (round(float(amount), 2), bool(deleted))
        for ext, amount, deleted in zip(
            deals["external_id"], deals["amount"], deals["is_deleted"], strict=True
        )
    }


def amounts(records: Records) -> dict[str, tuple[float, bool]]:
    return {k: (round(float(r["amount"]), 2), bool(r["is_deleted"])) for k, r in records.items()}


def test_full_read_is_every_record_once_with_deletions_flagged(sandbox: Sandbox) -> None:
    conn = sandbox.connector()
    data = sandbox.state.data

    owners = stream_pages(conn, "owners")
    assert {r["email"] for p in owners for r in p.records} == set(data.reps["email"])

    pages = stream_pages(conn, "deals")
    assert all(not p.rejects for p in pages)
    ids = Counter(r["external_id"] for p in pages for r in p.records)
    assert set(ids.values()) == {1}
    records = latest(pages)
    assert amounts(records) == server_deals(sandbox.state)
    assert sum(r["is_deleted"] for r in records.values()) == data.deals["is_deleted"].sum() >= 4
    cursors = [p.cursor or "" for p in pages]
    assert cursors == sorted(cursors)  # the merged listings never move the cursor back

    users = dict(zip(data.reps["rep_key"], data.reps["rep_key"].str[1:].astype(int), strict=True))
    deal_rows: list[dict[Any, Any]] = data.deals.to_dict("records")
    for row in deal_rows:
        got = records[deal_id(row["external_id"])]
        assert got["owner_external_id"] == str(users[row["owner_key"]])
        assert (got["status"], got["stage"]) == (row["status"], row["stage"])
        assert got["pipeline"] == "default"
        assert got["probability"] == pytest.approx(row["probability"])
        assert (got["account"], got["name"]) == (row["account"], row["name"])
        assert got["currency"] == row["currency"]
        assert got["created_at"] == row["created_at"].to_pydatetime()
        assert got["close_date"] == row["close_date"]
        closed = None if pd.isna(row["closed_at"]) else row["closed_at"].to_pydatetime()
        assert got["closed_at"] == closed

    activities = stream_pages(conn, "activities")
    acts = latest(activities)
    assert sum(len(p.records) for p in activities) == len(acts) == len(data.activities)
    activity_rows: list[dict[Any, Any]] = data.activities.to_dict("records")
    for row in activity_rows:
        got = acts[str(int(row["external_id"][1:]))]
        assert (got["type"], got["subject"]) == (row["type"], row["subject"])
        assert got["occurred_at"] == row["occurred_at"].to_pydatetime()
        ref = row["deal_external_id"]
        assert got["deal_external_id"] == (None if pd.isna(ref) else deal_id(ref))


@pytest.mark.parametrize("api_version", ["v2", "v1"])
def test_incremental_read_returns_touched_records(sandbox: Sandbox, api_version: str) -> None:
    conn = sandbox.connector(config={"api_version": api_version})
    full = stream_pages(conn, "deals")
    assert amounts(latest(full)) == server_deals(sandbox.state)
    cursor = max(p.cursor for p in full if p.cursor)

    touched = {deal_id(x) for x in sandbox.admin("touch", {"count": 5})["touched"]}
    changed = latest(stream_pages(conn, "deals", datetime.fromisoformat(cursor)))

    assert touched <= changed.keys()
    # Beyond the touched ones only the boundary second (read again on purpose) comes back.
    boundary = datetime.fromisoformat(cursor) - timedelta(seconds=1)
    assert all(r["source_modified_at"] >= boundary for r in changed.values())
    assert len(changed) < len(full[0].records) + 5
    server = server_deals(sandbox.state)
    assert {k: amounts(changed)[k] for k in touched} == {k: server[k] for k in touched}


def full_read(conn: PipedriveConnector) -> dict[str, Records]:
    return {name: latest(stream_pages(conn, name)) for name in ("owners", "deals", "activities")}


def test_faults_give_the_same_records(sandbox: Sandbox) -> None:
    expected = full_read(sandbox.connector())
    waits: list[float] = []

    sandbox.admin("faults", {"status": 503, "count": 3})
    assert full_read(sandbox.connector(sleep=waits.append)) == expected
    assert len(waits) >= 3

    sandbox.admin("faults", {"malformed": 2})
    assert full_read(sandbox.connector(sleep=waits.append)) == expected
    assert sandbox.state.faults.malformed == 0

    # A tight limit whose window is already used up when the read starts: 429s, then pacing
    # (waits halved: still at least the 0.5 s window, as the headers round up to 1 s).
    sandbox.admin("faults", {"rate_limit": 12, "window": 0.5})
    paced = sandbox.connector(config={"page_size": 500}, sleep=lambda s: time.sleep(s / 2))
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": "sandbox-token"}) as http:
        burst = [http.get("/v1/users").status_code for _ in range(13)]
    assert burst[-1] == 429
    started = time.monotonic()
    assert full_read(paced) == expected
    assert sandbox.state.rate_limited >= 2
    assert time.monotonic() - started < 10
    sandbox.admin("reset")


def test_expired_oauth_tokens_are_refreshed_mid_read(sandbox: Sandbox) -> None:
    expected = latest(stream_pages(sandbox.connector(), "deals"))
    refreshed: list[dict[str, Any]] = []
    conn = sandbox.connector(
        credentials={
            "client_id": "quotagap",
            "client_secret": "sandbox-secret",
            "refresh_token": "sandbox-refresh",
            "access_token": "sandbox-token",
            "token_url": f"{sandbox.url}/oauth/token",
        },
        on_refresh=refreshed.append,
    )
    stream = next(s for s in conn.streams() if s.name == "deals")
    pages = []
    for page in stream.pages(None):
        pages.append(page)
        if len(pages) == 1:
            sandbox.admin("expire-tokens")
    assert latest(pages) == expected
    assert len(refreshed) == 1 and refreshed[0]["api_domain"] == sandbox.url
    assert sandbox.state.issued == 1


def test_records_changed_while_paging_are_not_lost(sandbox: Sandbox) -> None:
    sandbox.admin("faults", {"mutate_after": 2, "mutate_count": 30})
    conn = sandbox.connector()
    pages = stream_pages(conn, "deals")
    assert sandbox.state.faults.mutate_after is None  # the mutation happened mid-read
    server = server_deals(sandbox.state)
    # The keyset cursor serves a changed live deal again later in the same read. (The short
    # deleted listing was read to its end on the first page, before the change: that change
    # is the next run's, whose cursor is capped at this run's start.)
    got = amounts(latest(pages))
    assert {k: v for k, v in got.items() if not v[1]} == {
        k: v for k, v in server.items() if not v[1]
    }

    # A sync killed after any page resumes from that page's cursor and still ends current.
    for k, page in enumerate(pages):
        if page.cursor is None:
            continue
        since = datetime.fromisoformat(page.cursor)
        resumed = pages[: k + 1] + stream_pages(conn, "deals", since)
        assert amounts(latest(resumed)) == server, f"resumed after page {k}"


def test_v1_full_read_matches_v2(sandbox: Sandbox) -> None:
    v2 = latest(stream_pages(sandbox.connector(), "deals"))
    v1 = latest(stream_pages(sandbox.connector(config={"api_version": "v1"}), "deals"))
    assert v1 == v2


def test_sandbox_auth_and_wire_format(sandbox: Sandbox) -> None:
    url = sandbox.url
    refused = httpx.get(f"{url}/v1/users", params={"api_token": "sandbox-token"})
    assert refused.status_code == 401
    assert refused.json() == {
        "success": False,
        "error": "unauthorized access",
        "errorCode": 401,
        "error_info": refused.json()["error_info"],
    }
    header = {"x-api-token": "sandbox-token"}
    body = httpx.get(
        f"{url}/api/v2/deals", params={"limit": 500, "sort_by": "update_time"}, headers=header
    ).json()
    assert body["success"] is True and len(body["data"]) == 25
    assert isinstance(body["data"][0]["id"], int) and body["data"][0]["update_time"].endswith("Z")
    assert body["additional_data"]["next_cursor"]
    bad = httpx.get(f"{url}/api/v2/deals", params={"cursor": "%%%"}, headers=header)
    assert bad.status_code == 400 and bad.json()["success"] is False

    token = httpx.post(
        f"{url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert token.status_code == 401  # no Basic client auth
    token = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "nope"},
        auth=("client", "secret"),
    )
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"

    sandbox.admin("faults", {"rate_limit": 1, "window": 5})
    httpx.get(f"{url}/v1/users", headers=header)
    limited = httpx.get(f"{url}/v1/users", headers=header)
    assert limited.status_code == 429
    assert limited.json()["success"] is False
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-limit"] == "1"
    assert int(limited.headers["Retry-After"]) >= 1
