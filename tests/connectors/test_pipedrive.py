"""The Pipedrive connector against Pipedrive's published examples (respx): paging, auth, limits."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.base import Page
from connectors.http import BudgetPaused, CrmAuthError, CrmError
from connectors.pipedrive import (
    DEFAULT_BASE_URL,
    KIND,
    TOKEN_URL,
    PipedriveConnector,
    build_client,
    map_activity,
    rate_limits,
)
from tests.conftest import SHARED

FIXTURES = SHARED / "fixtures" / "crm" / "pipedrive"
BASE = "https://acme.pipedrive.com"
TOKEN = "0123456789abcdef-secret-api-token"
UNAUTHORIZED = {"success": False, "error": "unauthorized access", "errorCode": 401}
OVER_LIMIT = {"success": False, "error": "Request over limit", "errorCode": 429}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def v2_body(data: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    return {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}}


def v2_deal(ident: int, stamp: str, **fields: Any) -> dict[str, Any]:
    """Pipedrive's own v2 deal example with another id and update_time."""
    deal = dict(fixture("v2_get_deals.example.json")["data"][0])
    deal.update(id=ident, update_time=stamp, **fields)
    return deal


def v1_body(data: list[Any] | None, *, start: int, more: bool) -> dict[str, Any]:
    pagination: dict[str, Any] = {"start": start, "limit": 100, "more_items_in_collection": more}
    if more and data:
        pagination["next_start"] = start + len(data)
    return {"success": True, "data": data, "additional_data": {"pagination": pagination}}


def v1_deal(ident: int, stamp: str, **fields: Any) -> dict[str, Any]:
    deal = dict(fixture("v1_get_deals.example.json")["data"][0])
    deal.update(id=ident, update_time=stamp, **fields)
    return deal


class Waits(list[float]):
    """A fake ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        stages = fixture("v2_get_stages.example.json")["data"]
        stages = [*stages, {**stages[0], "id": 2, "name": "Proposal", "deal_probability": 50}]
        router.get(f"{BASE}/api/v2/stages").respond(json=v2_body(stages))
        router.get(f"{BASE}/api/v2/pipelines").respond(
            json=v2_body(fixture("v2_get_pipelines.example.json")["data"])
        )
        router.get(f"{BASE}/api/v2/organizations").respond(
            json=v2_body([{"id": 1, "name": "Acme Ltd"}])
        )
        router.get(f"{BASE}/v1/activityTypes", name="types").respond(json=activity_types())
        # The API token's user: its time zone is the company's (connector.zone()).
        me = {"id": 1, "name": "Admin", "timezone_name": "UTC", "timezone_offset": "+00:00"}
        router.get(f"{BASE}/v1/users/me", name="me").respond(json={"success": True, "data": me})
        router.get(f"{BASE}/api/v2/deals/archived", name="archived").respond(json=v2_body([]))
        router.get(f"{BASE}/v1/recents", params={"items": "activity"}, name="gone").respond(
            json=v1_body([], start=0, more=False)
        )
        yield router


def activity_types(*custom: tuple[str, str]) -> dict[str, Any]:
    """``GET /v1/activityTypes``: the built-in types, then (key_string, icon_key) custom ones."""
    built_in = [(k, k) for k in ("call", "meeting", "task", "deadline", "email", "lunch")]
    return {
        "success": True,
        "data": [
            {
                "id": i + 1,
                "order_nr": i + 1,
                "name": key.replace("_", " ").title(),
                "key_string": key,
                "icon_key": icon,
                "active_flag": True,
                "color": None,
                "is_custom_flag": (key, icon) in custom,
                "add_time": "2020-01-01 00:00:00",
                "update_time": None,
            }
            for i, (key, icon) in enumerate([*built_in, *custom])
        ],
    }


def connector(
    waits: Waits, config: dict[str, Any] | None = None, **credentials: Any
) -> PipedriveConnector:
    client = build_client(
        base_url=BASE, credentials=credentials or {"api_token": TOKEN}, sleep=waits
    )
    return PipedriveConnector(client, config)


def stream(conn: PipedriveConnector, name: str) -> Any:
    return next(s for s in conn.streams() if s.name == name)


def read(conn: PipedriveConnector, name: str, since: datetime | None = None) -> list[Page]:
    return list(stream(conn, name).pages(since))


def records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def params(route: respx.Route, index: int = -1) -> dict[str, str]:
    return dict(route.calls[index].request.url.params)


def test_module_contract() -> None:
    assert KIND == "pipedrive"
    assert DEFAULT_BASE_URL == "https://api.pipedrive.com"
    conn = PipedriveConnector(build_client(base_url=None, credentials={"api_token": TOKEN}))
    assert conn.client.base_url == DEFAULT_BASE_URL
    assert [s.name for s in conn.streams()] == ["owners", "deals", "activities"]
    assert stream(conn, "deals").cursor_field == "update_time"


def test_v2_cursor_paging_maps_the_published_deal(mock: respx.MockRouter, waits: Waits) -> None:
    deleted = mock.get(f"{BASE}/api/v2/deals", params={"status": "deleted"}).respond(
        json=v2_body([])
    )
    first, second = v2_deal(1, "2021-01-01T00:00:00Z"), v2_deal(2, "2021-01-02T08:00:00Z")
    deals = mock.get(f"{BASE}/api/v2/deals").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=v2_body([second])
            if request.url.params.get("cursor") == "eyJpZCI6MX0"
            else v2_body([first], "eyJpZCI6MX0"),
        )
    )
    pages = read(connector(waits, {"page_size": 1}), "deals")

    assert [params(deals, i).get("cursor") for i in range(2)] == [None, "eyJpZCI6MX0"]
    assert params(deals, 0)["limit"] == "1"
    assert deleted.call_count == 1
    assert [p.cursor for p in pages] == ["2021-01-01T00:00:00Z", "2021-01-02T08:00:00Z"]
    assert records(pages)[0] == {
        "external_id": "1",
        "owner_external_id": "1",
        "name": "Deal Title",
        "account": "Acme Ltd",
        "amount": 200.0,
        "currency": "USD",
        "stage": "Stage Name",
        "pipeline": "Pipeline Name",
        # The deal's own 90 overrides its stage's 100.
        "probability": 0.9,
        "status": "open",
        "created_at": datetime(2021, 1, 1, tzinfo=UTC),
        "close_date": date(2021, 1, 1),
        "closed_at": None,
        "source_modified_at": datetime(2021, 1, 1, tzinfo=UTC),
        "is_deleted": False,
    }
    # Organisation names are looked up once, then cached.
    orgs = mock.routes[2]
    assert orgs.call_count == 1 and params(orgs)["ids"] == "1"


def test_updated_since_is_sent_to_both_deal_listings(mock: respx.MockRouter, waits: Waits) -> None:
    deals = mock.get(f"{BASE}/api/v2/deals").respond(json=v2_body([]))
    since = datetime(2025, 1, 1, 10, 20, 0, 750_000, tzinfo=UTC)
    assert read(connector(waits), "deals", since) == []

    sent = [params(deals, i) for i in range(deals.call_count)]
    assert sorted(p.get("status", "") for p in sent) == ["", "deleted"]
    for query in sent:
        # Floored to the second: ">=" must not skip records of the boundary second.
        assert query["updated_since"] == "2025-01-01T10:20:00Z"
        assert query["sort_by"] == "update_time" and query["sort_direction"] == "asc"
        assert query["limit"] == "500"


def test_deleted_deals_are_merged_in_update_order_and_flagged(
    mock: respx.MockRouter, waits: Waits
) -> None:
    mock.get(f"{BASE}/api/v2/deals", params={"status": "deleted"}).respond(
        json=v2_body([v2_deal(7, "2021-01-02T00:00:00Z", status="won")])
    )
    mock.get(f"{BASE}/api/v2/deals").respond(
        json=v2_body([v2_deal(1, "2021-01-01T00:00:00Z"), v2_deal(2, "2021-01-03T00:00:00Z")])
    )
    pages = read(connector(waits, {"page_size": 2}), "deals")

    got = records(pages)
    assert [(r["external_id"], r["is_deleted"]) for r in got] == [
        ("1", False),
        ("7", True),
        ("2", False),
    ]
    # Cursors only move forward, so resuming from any page misses neither listing.
    assert [p.cursor for p in pages] == ["2021-01-02T00:00:00Z", "2021-01-03T00:00:00Z"]
    won = got[1]
    assert won["status"] == "won" and won["probability"] == 1.0
    assert won["closed_at"] == datetime(2021, 1, 1, tzinfo=UTC)
    assert won["close_date"] == date(2021, 1, 1)  # local_won_date


def test_v1_start_limit_paging_with_more_items_in_collection(
    mock: respx.MockRouter, waits: Waits
) -> None:
    mock.get(f"{BASE}/v1/deals", params={"status": "deleted"}).respond(
        json=v1_body(None, start=0, more=False)  # v1 answers "nothing" with data: null
    )
    first = v1_deal(1, "2019-11-28 16:19:50")
    second = v1_deal(2, "2019-11-29 08:00:00", status="lost", lost_time="2019-11-29 07:59:00")
    deals = mock.get(f"{BASE}/v1/deals").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=v1_body([second], start=1, more=False)
            if request.url.params["start"] == "1"
            else v1_body([first], start=0, more=True),
        )
    )
    pages = read(connector(waits, {"api_version": "v1", "page_size": 1}), "deals")

    assert [params(deals, i)["start"] for i in range(2)] == ["0", "1"]
    assert params(deals, 0)["sort"] == "update_time ASC"
    assert params(deals, 0)["status"] == "all_not_deleted"
    got = records(pages)
    assert got[0]["owner_external_id"] == "8877"  # the user_id object
    assert got[0]["account"] == "Organization"
    assert got[0]["stage"] == "Proposal" and got[0]["probability"] == 0.5
    assert got[0]["created_at"] == datetime(2019, 5, 29, 4, 21, 51, tzinfo=UTC)
    assert got[0]["close_date"] == date(2019, 6, 29)
    assert got[1]["status"] == "lost" and got[1]["probability"] == 0.0
    assert got[1]["closed_at"] == datetime(2019, 11, 29, 7, 59, tzinfo=UTC)
    assert [p.cursor for p in pages] == ["2019-11-28T16:19:50Z", "2019-11-29T08:00:00Z"]


@pytest.mark.parametrize("shifted", [True, False])
def test_v1_pages_overlap_so_shifted_offsets_skip_nothing(
    mock: respx.MockRouter, waits: Waits, shifted: bool
) -> None:
    mock.get(f"{BASE}/v1/deals", params={"status": "deleted"}).respond(
        json=v1_body(None, start=0, more=False)
    )
    rows = [v1_deal(i, f"2020-01-{i:02d} 00:00:00") for i in range(1, 10)]
    # Between the two requests deal 1 may be updated: every later deal slides back one place.
    after = [*rows[1:], v1_deal(1, "2020-02-01 00:00:00")] if shifted else rows

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["start"])
        if start == 0:
            return httpx.Response(200, json=v1_body(rows[:5], start=0, more=True))
        return httpx.Response(200, json=v1_body(after[start : start + 5], start=start, more=False))

    deals = mock.get(f"{BASE}/v1/deals").mock(side_effect=answer)
    got = records(read(connector(waits, {"api_version": "v1", "page_size": 5}), "deals"))

    assert params(deals, 1)["start"] == "4"  # next_start 5, one record early
    ids = [int(r["external_id"]) for r in got]
    if shifted:
        # Deal 6 slid to offset 4: without the overlap it would be skipped; deal 1 comes
        # again with its new update_time.
        assert ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]
    else:
        assert ids == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # the re-read deal 5 is not repeated


def test_v1_incremental_reads_recents(mock: respx.MockRouter, waits: Waits) -> None:
    body = fixture("v1_get_recents.example.json")
    # A recents row without data, as recorded from a real account.
    assert fixture("recents_response_with_null.json")["data"][1]["data"] is None
    body["data"].append({"item": "deal", "id": 4, "data": None})
    recents = mock.get(f"{BASE}/v1/recents").respond(json=body)
    since = datetime(2020, 10, 10, tzinfo=UTC)
    pages = read(connector(waits, {"api_version": "v1"}), "deals", since)

    query = params(recents)
    assert query["items"] == "deal"
    assert query["since_timestamp"] == "2020-10-09 23:59:59"
    # The example's activity row is not a deal; its malformed 'pagination"' key ends paging.
    assert recents.call_count == 1
    got = records(pages)
    assert [r["external_id"] for r in got] == ["1"]
    assert [(r.external_id, r.reason) for r in pages[0].rejects] == [
        ("4", "recents row without deal data (deleted or hidden from this token)")
    ]


def test_api_token_only_in_the_header(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(f"{BASE}/v1/users").respond(json=fixture("v1_get_users.example.json"))
    mock.get(f"{BASE}/api/v2/deals").respond(json=v2_body([v2_deal(1, "2021-01-01T00:00:00Z")]))
    mock.get(f"{BASE}/api/v2/activities").respond(
        json=v2_body(fixture("v2_get_activities.example.json")["data"])
    )
    conn = connector(waits)
    for name in ("owners", "deals", "activities"):
        read(conn, name, datetime(2020, 1, 1, tzinfo=UTC))

    assert len(mock.calls) >= 6
    for call in mock.calls:
        request = call.request
        assert request.headers["x-api-token"] == TOKEN
        assert TOKEN not in str(request.url)
        assert "api_token" not in str(request.url)
        assert "authorization" not in request.headers


def test_429_waits_for_retry_after(mock: respx.MockRouter, waits: Waits) -> None:
    users = mock.get(f"{BASE}/v1/users").mock(
        side_effect=[
            httpx.Response(429, json=OVER_LIMIT, headers={"Retry-After": "3"}),
            httpx.Response(200, json=fixture("v1_get_users.example.json")),
        ]
    )
    assert len(records(read(connector(waits), "owners"))) == 2
    assert users.call_count == 2
    assert waits == [3.0]


def test_a_spent_daily_budget_pauses_instead_of_retrying(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """A 429 with x-daily-requests-left: 0 lasts until the budget's reset: no retry, no
    sleep, a BudgetPaused for the engine to end the run as paused. A 429 of the 2-second
    window (requests left for the day) is still retried."""
    body = {"success": False, "error": "Request over limit", "errorCode": 429}
    spent = {"x-daily-requests-left": "0", "x-ratelimit-remaining": "0"}
    route = mock.get(f"{BASE}/api/v2/activities").respond(429, json=body, headers=spent)
    with pytest.raises(BudgetPaused, match="paused: daily API budget"):
        read(connector(waits), "activities")
    assert route.call_count == 1 and waits == []

    route.side_effect = [
        httpx.Response(
            429, json=body, headers={"x-daily-requests-left": "5000", "retry-after": "2"}
        ),
        httpx.Response(200, json=v2_body([])),
    ]
    assert read(connector(waits), "activities") == []
    assert route.call_count == 3 and waits == [2.0]


def test_rate_limit_headers_slow_down_before_the_limit(
    mock: respx.MockRouter, waits: Waits
) -> None:
    def limited(remaining: int) -> httpx.Response:
        headers = {
            "x-ratelimit-limit": "40",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": "2",
        }
        return httpx.Response(200, json=fixture("v1_get_users.example.json"), headers=headers)

    mock.get(f"{BASE}/v1/users").mock(side_effect=[limited(30), limited(2), limited(0)])
    conn = connector(waits)
    for _ in range(3):
        read(conn, "owners")
    # Plenty left: no wait; 2 of 40 left: the 2-second window spread over them; none: a window.
    assert waits == [1.0, 2.0]
    assert rate_limits(httpx.Response(200, headers={"x-ratelimit-limit": "40"})).reset_seconds == 2


def test_401_refreshes_the_oauth_token_and_retries(mock: respx.MockRouter, waits: Waits) -> None:
    refreshed: list[dict[str, Any]] = []
    token = mock.post(TOKEN_URL).respond(
        json={
            "access_token": "new-access",
            "refresh_token": "new-refresh",
            "token_type": "Bearer",
            "expires_in": 3599,
            "api_domain": BASE,
        }
    )
    users = mock.get(f"{BASE}/v1/users").mock(
        side_effect=[
            httpx.Response(401, json=UNAUTHORIZED),
            httpx.Response(200, json=fixture("v1_get_users.example.json")),
        ]
    )
    client = build_client(
        base_url=BASE,
        credentials={
            "client_id": "cid",
            "client_secret": "csecret",
            "refresh_token": "old-refresh",
            "access_token": "old-access",
        },
        on_refresh=refreshed.append,
        sleep=waits,
    )
    assert len(records(read(PipedriveConnector(client), "owners"))) == 2

    assert users.calls[0].request.headers["authorization"] == "Bearer old-access"
    assert users.calls[1].request.headers["authorization"] == "Bearer new-access"
    refresh = token.calls[0].request
    assert refresh.headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    form = parse_qs(refresh.content.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": ["old-refresh"]}
    assert refreshed[0]["api_domain"] == BASE
    assert waits == []


def test_refused_credentials_are_an_auth_error(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(f"{BASE}/v1/users").respond(401, json=UNAUTHORIZED)
    with pytest.raises(CrmAuthError):
        read(connector(waits), "owners")


def test_unsuccessful_body_is_an_error(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(f"{BASE}/v1/users").respond(json={"success": False, "error": "Scope missing"})
    with pytest.raises(CrmError, match="Scope missing"):
        read(connector(waits), "owners")


def test_malformed_deals_are_rejected_with_reasons(mock: respx.MockRouter, waits: Waits) -> None:
    stamp = "2021-01-01T00:00:00Z"
    mock.get(f"{BASE}/api/v2/deals", params={"status": "deleted"}).respond(json=v2_body([]))
    mock.get(f"{BASE}/api/v2/deals").respond(
        json=v2_body(
            [
                v2_deal(1, stamp),
                v2_deal(2, stamp, owner_id=None),
                v2_deal(3, stamp, value="abc"),
                v2_deal(4, stamp, stage_id=99),
                v2_deal(5, stamp, value=-10),
                v2_deal(6, stamp, status="archived"),
                v2_deal(7, stamp, currency="dollars"),
                v2_deal(8, "not a time"),
                "not an object",
            ]
        )
    )
    pages = read(connector(waits), "deals")

    page = pages[0]
    assert page.fetched == 9
    assert [r["external_id"] for r in page.records] == ["1"]
    assert [(r.external_id, r.reason) for r in page.rejects] == [
        ("2", "missing owner_id"),
        ("3", "bad value: 'abc'"),
        ("4", "unknown stage_id: 99"),
        ("5", "negative value: -10"),
        ("6", "unknown status: 'archived'"),
        ("7", "bad currency: 'dollars'"),
        ("8", "bad update_time: 'not a time'"),
        (None, "not an object: str"),
    ]
    assert page.rejects[0].raw["id"] == 2
    # The unknown stage made us re-read the stages once (it may have been created meanwhile).
    assert mock.routes[0].call_count == 2


def test_activities_types_deletion_and_times(mock: respx.MockRouter, waits: Waits) -> None:
    example = fixture("v2_get_activities.example.json")["data"][0]
    rows = [
        example,
        {**example, "id": 2, "type": "deadline"},
        {**example, "id": 3, "type": "lunch", "is_deleted": True},
        {**example, "id": 4, "type": "call", "owner_id": None},
        {**example, "id": 5, "type": "email", "due_time": "25:99"},
    ]
    activities = mock.get(f"{BASE}/api/v2/activities").respond(json=v2_body(rows))
    since = datetime(2021, 1, 1, tzinfo=UTC)
    # (The first page holds the deletions the recents feed reports: none here.)
    page = read(connector(waits), "activities", since)[-1]

    query = params(activities)
    assert query["updated_since"] == "2021-01-01T00:00:00Z"
    assert query["sort_by"] == "update_time"
    assert [(r["external_id"], r["type"], r["is_deleted"]) for r in page.records] == [
        ("2", "task", False),
        ("3", "meeting", True),
    ]
    assert page.records[0]["occurred_at"] == datetime(2021, 1, 1, 15, 0, tzinfo=UTC)
    assert page.records[0]["deal_external_id"] == "5"
    assert page.records[0]["owner_external_id"] == "1"
    assert [(r.external_id, r.reason) for r in page.rejects] == [
        ("1", "unmapped activity type 'activity_type': map it with the activity_types setting"),
        ("4", "missing owner_id"),
        ("5", "bad due_time: '25:99'"),
    ]

    conn = connector(waits, {"activity_types": {"activity_type": "Meeting"}})
    mapped = read(conn, "activities")[0].records
    assert mapped[0]["type"] == "meeting"
    anything = read(connector(waits, {"default_activity_type": "task"}), "activities")[0]
    assert anything.records[0]["type"] == "task"


def test_archived_deals_are_read_and_an_archived_open_deal_leaves_the_pipeline(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """v2 /deals leaves archived deals out; /deals/archived lists them: a won deal archived
    is still won, an open one archived is in no pipeline any more (deleted)."""
    mock.get(f"{BASE}/api/v2/deals").respond(json=v2_body([]))
    archived = [
        v2_deal(7, "2026-03-01T10:00:00Z", status="won", won_time="2026-02-27T16:00:00Z",
                is_archived=True, archive_time="2026-03-01T10:00:00Z"),
        v2_deal(8, "2026-03-02T10:00:00Z", status="open", is_archived=True,
                archive_time="2026-03-02T10:00:00Z"),
    ]  # fmt: skip
    route = mock.routes["archived"]
    route.respond(json=v2_body(archived))
    since = datetime(2026, 2, 1, tzinfo=UTC)

    got = {r["external_id"]: r for r in records(read(connector(waits), "deals", since))}

    assert (got["7"]["status"], got["7"]["is_deleted"]) == ("won", False)
    assert (got["8"]["status"], got["8"]["is_deleted"]) == ("open", True)
    assert params(route)["updated_since"] == "2026-02-01T00:00:00Z"

    route.respond(404, json={"success": False, "error": "Not found"})
    assert records(read(connector(waits), "deals", since)) == []


def test_deleted_activities_are_read_from_the_recents_feed(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """A deleted activity leaves v2 /activities; /v1/recents reports it with ``data: null``
    (a row with data is a live change, read from v2): its id is a deletion, first."""
    mock.get(f"{BASE}/api/v2/activities").respond(json=v2_body([]))
    recents = load_recents_with_null()
    mock.routes["gone"].respond(json=recents)
    since = datetime(2021, 1, 1, tzinfo=UTC)

    pages = read(connector(waits), "activities", since)

    expected = [str(r["id"]) for r in recents["data"] if r["data"] is None]
    assert expected and pages[0].deleted == expected and pages[0].cursor is None
    assert params(mock.routes["gone"])["since_timestamp"] == "2020-12-31 23:59:59"
    # A first (full) read has nothing stored to delete: it does not ask.
    calls = mock.routes["gone"].call_count
    read(connector(waits), "activities")
    assert mock.routes["gone"].call_count == calls


def load_recents_with_null() -> dict[str, Any]:
    """Pipedrive's recents answer with a deleted record (``data: null``), as activities."""
    body = fixture("recents_response_with_null.json")
    rows = [{**r, "item": "activity"} for r in body["data"]]
    return {**body, "data": rows}


def test_custom_activity_types_map_by_their_icon(mock: respx.MockRouter, waits: Waits) -> None:
    """A company's custom types take the kind of the icon chosen for them in the account's
    catalog; a type added during the run makes the catalog be read again; an icon that says
    nothing is rejected naming the type; the setting maps over the catalog."""
    example = fixture("v2_get_activities.example.json")["data"][0]
    rows = [
        {**example, "id": 1, "type": "demo"},
        {**example, "id": 2, "type": "site_visit"},
        {**example, "id": 3, "type": "cold_call"},
    ]
    mock.get(f"{BASE}/api/v2/activities").respond(json=v2_body(rows))
    types = mock.routes["types"]
    first = activity_types(("demo", "presentation"), ("site_visit", "car"))
    types.side_effect = [
        httpx.Response(200, json=first),
        # cold_call was created while the run read: the catalog is read once more.
        httpx.Response(
            200,
            json=activity_types(
                ("demo", "presentation"), ("site_visit", "car"), ("cold_call", "smartphone")
            ),
        ),
    ]

    page = read(connector(waits), "activities")[0]

    assert [(r["external_id"], r["type"]) for r in page.records] == [
        ("1", "meeting"),
        ("3", "call"),
    ]
    assert [(r.external_id, r.reason) for r in page.rejects] == [
        ("2", "unmapped activity type 'site_visit': map it with the activity_types setting")
    ]
    assert types.call_count == 2

    types.side_effect = None
    types.return_value = httpx.Response(200, json=first)
    conn = connector(waits, {"activity_types": {"demo": "task", "site_visit": "meeting"}})
    mapped = {r["external_id"]: r["type"] for r in read(conn, "activities")[0].records}
    assert (mapped["1"], mapped["2"]) == ("task", "meeting")


def test_v1_activity_example_maps() -> None:
    raw = fixture("v1_get_activities.example.json")["data"][0]
    activity = map_activity(raw, types={"deadline": "task"}, default_type=None)
    assert activity["owner_external_id"] == "1234"
    assert activity["type"] == "task"
    assert activity["occurred_at"] == datetime(2020, 6, 9, 10, 0, tzinfo=UTC)
    assert activity["source_modified_at"] == datetime(2020, 8, 8, 12, 37, 56, tzinfo=UTC)
    assert activity["deal_external_id"] == "300"
    assert activity["is_deleted"] is False


def test_an_activity_without_a_time_is_on_its_day_everywhere() -> None:
    """A due_date without due_time is a local date: 00:00 UTC would be the day before in the
    Americas, so it is taken at 12:00 UTC (connectors.base.local_day)."""
    raw = {**fixture("v1_get_activities.example.json")["data"][0], "due_date": "2026-03-31"}
    for blank in ("", None):
        activity = map_activity(
            {**raw, "due_time": blank}, types={"deadline": "task"}, default_type=None
        )
        assert activity["occurred_at"] == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def test_owners_from_users(mock: respx.MockRouter, waits: Waits) -> None:
    body = fixture("v1_get_users.example.json")
    body["data"].append(
        {**body["data"][0], "id": 3, "email": "Gone@Pipedrive.com", "is_deleted": True}
    )
    mock.get(f"{BASE}/v1/users").respond(json=body)
    pages = read(connector(waits), "owners")

    got = {r["external_id"]: r for r in records(pages)}
    assert got["1"] == {
        "external_id": "1",
        "name": "John Doe",
        "email": "john@pipedrive.com",
        "is_active": True,
        "manager_external_id": None,
        "team_name": None,
    }
    assert got["3"]["is_active"] is False and got["3"]["email"] == "gone@pipedrive.com"
    assert pages[-1].cursor == "2019-11-21T09:49:50Z"


def test_company_domain_and_versioned_bases(mock: respx.MockRouter, waits: Waits) -> None:
    users = mock.get(f"{BASE}/v1/users").respond(json=fixture("v1_get_users.example.json"))
    for base in (f"{BASE}/api/v2", f"{BASE}/v1/", BASE):
        client = build_client(base_url=base, credentials={"api_token": TOKEN}, sleep=waits)
        read(PipedriveConnector(client), "owners")
    assert users.call_count == 3


def test_bad_credentials_and_config_are_refused() -> None:
    with pytest.raises(ValueError, match="api_token"):
        build_client(base_url=None, credentials={"client_id": "x"})
    client = build_client(base_url=None, credentials={"api_token": TOKEN})
    with pytest.raises(ValueError, match="api_version"):
        PipedriveConnector(client, {"api_version": "v3"})
    with pytest.raises(ValueError, match="activity types"):
        PipedriveConnector(client, {"activity_types": {"demo": "webinar"}})


def test_a_won_time_counts_on_its_day_in_the_company_time_zone(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """A deal whose answer has no company-local date counts on the day of its won_time (UTC) in
    the company's zone: 03:30 UTC on 1 April is still 31 March in California, the quarter the
    rep closed it in. The zone is the API user's, or the ``timezone`` setting."""
    deal = {**fixture("v2_get_deals.example.json")["data"][0], "status": "won"}
    deal |= {"won_time": "2026-04-01T03:30:00Z", "close_time": "2026-04-01T03:30:00Z"}
    deal |= {"stage_id": 1, "pipeline_id": 1}
    for local in ("local_won_date", "local_lost_date", "local_close_date"):
        deal.pop(local)  # the company-local dates, where an answer leaves them out
    mock.get(f"{BASE}/api/v2/deals", name="deals").respond(json=v2_body([deal]))
    la = {"id": 1, "timezone_name": "America/Los_Angeles", "timezone_offset": "-07:00"}
    mock.routes["me"].respond(json={"success": True, "data": la})

    def close_days(conn: PipedriveConnector) -> set[date]:
        return {r["close_date"] for p in read(conn, "deals") for r in p.records}

    assert close_days(connector(waits)) == {date(2026, 3, 31)}
    assert close_days(connector(waits, {"timezone": "Asia/Tokyo"})) == {date(2026, 4, 1)}
    mock.routes["me"].respond(status_code=403, json={"success": False, "error": "forbidden"})
    assert close_days(connector(waits)) == {date(2026, 4, 1)}  # unknown: UTC, with a warning
