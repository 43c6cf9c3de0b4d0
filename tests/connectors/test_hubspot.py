"""HubSpot connector against recorded/documented responses (respx): mapping, paging, retries.

Built from ``shared/fixtures/crm/hubspot`` (deals recorded from a real portal) and the shapes in
``shared/docs/crm-apis.md``. No test sleeps: the client gets a ``sleep`` that records waits.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.base import Page, parse_datetime
from connectors.http import CrmAuthError, CrmClient
from connectors.hubspot import (
    DEFAULT_BASE_URL,
    HubSpotConnector,
    build_client,
    limits_from_headers,
)
from connectors.hubspot_search import to_ms
from tests.conftest import SHARED
from tests.connectors.hubspot_wire import CALL_TO_DEAL, associations_answer, to

FIXTURES = SHARED / "fixtures" / "crm" / "hubspot"
BASE = DEFAULT_BASE_URL
OWNER = "6166860"

# HubSpot's default sales pipeline (metadata values are strings, as on the wire).
PIPELINES = {
    "results": [
        {
            "id": "default",
            "label": "Sales Pipeline",
            "displayOrder": 0,
            "archived": False,
            "stages": [
                {
                    "id": sid,
                    "label": label,
                    "displayOrder": i,
                    "archived": False,
                    "metadata": {"isClosed": closed, "probability": probability},
                }
                for i, (sid, label, closed, probability) in enumerate(
                    [
                        ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
                        ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
                        ("contractsent", "Contract Sent", "false", "0.9"),
                        ("closedwon", "Closed Won", "true", "1.0"),
                        ("closedlost", "Closed Lost", "true", "0.0"),
                    ]
                )
            ],
        }
    ]
}
EXPIRED = {
    "status": "error",
    "message": "The OAuth token used to make this call expired 75 second(s) ago.",
    "correlationId": "5d3a6b1c-3f0c-4a3e-9f53-1c3a0e2b7d11",
    "category": "EXPIRED_AUTHENTICATION",
}
RATE_LIMITED = {
    "status": "error",
    "message": "You have reached your secondly limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "policyName": "SECONDLY",
}
EMPTY: dict[str, Any] = {"results": []}
# GET /account-info/v3/details as documented; a portal in UTC unless a test says otherwise.
ACCOUNT: dict[str, Any] = {
    "portalId": 62515,
    "accountType": "STANDARD",
    "timeZone": "UTC",
    "companyCurrency": "USD",
    "additionalCurrencies": [],
    "utcOffset": "+00:00",
    "utcOffsetMilliseconds": 0,
    "uiDomain": "app.hubspot.com",
    "dataHostingLocation": "na1",
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


T0 = to_ms(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def deal(ident: int, stamp: int, **props: Any) -> dict[str, Any]:
    """A search result in HubSpot's shape: every property a string (or null)."""
    properties = {
        "amount": "1000",
        "closedate": None,
        "createdate": "2026-01-05T10:00:00.000Z",
        "dealname": f"Deal {ident}",
        "dealstage": "qualifiedtobuy",
        "pipeline": "default",
        "hs_lastmodifieddate": iso_ms(stamp),
        "hs_object_id": str(ident),
        "hubspot_owner_id": OWNER,
        **props,
    }
    return {
        "id": str(ident),
        "properties": properties,
        "createdAt": properties["createdate"],
        "updatedAt": properties["hs_lastmodifieddate"],
        "archived": False,
    }


@cache
def _parse_ms(text: str) -> int:
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


class FakeSearch:
    """HubSpot's search semantics over an in-memory list: filters, one sort, offset paging,
    page size capped, and the 400 past 10,000 results."""

    def __init__(self, records: list[dict[str, Any]], page_limit: int = 200) -> None:
        self.records = records
        self.page_limit = page_limit
        self.bodies: list[dict[str, Any]] = []
        self.before: Callable[[int], None] | None = None

    @staticmethod
    def value(record: dict[str, Any], prop: str) -> int:
        raw = record["properties"][prop]
        return int(raw) if prop == "hs_object_id" else _parse_ms(raw)

    def matches(self, record: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        ops: dict[str, Callable[[int, int], bool]] = {
            "GTE": lambda a, b: a >= b,
            "GT": lambda a, b: a > b,
            "LTE": lambda a, b: a <= b,
            "LT": lambda a, b: a < b,
            "EQ": lambda a, b: a == b,
        }
        if not groups:
            return True
        return any(
            all(
                ops[f["operator"]](self.value(record, f["propertyName"]), int(f["value"]))
                for f in g["filters"]
            )
            for g in groups
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.before is not None:
            self.before(len(self.bodies))
        offset = int(body.get("after") or 0)
        if offset >= 10_000:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": "There was a problem with the request.",
                    "category": "VALIDATION_ERROR",
                },
            )
        rows = [r for r in self.records if self.matches(r, body.get("filterGroups") or [])]
        prop = body["sorts"][0]["propertyName"]
        rows.sort(key=lambda r: (self.value(r, prop), int(r["id"])))
        limit = min(int(body.get("limit", 10)), self.page_limit)
        payload: dict[str, Any] = {
            "total": len(rows),
            "results": copy.deepcopy(rows[offset : offset + limit]),
        }
        if offset + limit < len(rows):
            payload["paging"] = {"next": {"after": str(offset + limit)}}
        return httpx.Response(200, json=payload)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/crm/v3/pipelines/deals").mock(return_value=httpx.Response(200, json=PIPELINES))
        mock.get("/account-info/v3/details", name="account").mock(
            return_value=httpx.Response(200, json=ACCOUNT)
        )
        mock.get("/crm/v3/objects/deals").mock(return_value=httpx.Response(200, json=EMPTY))
        # Deals without companies unless a test says otherwise (HubSpot: 207 and errors).
        mock.post("/crm/v4/associations/deals/companies/batch/read", name="deal_companies").mock(
            side_effect=lambda request: associations_answer(request, {})
        )
        yield mock


def connector(
    credentials: dict[str, Any] | None = None,
    sleeps: list[float] | None = None,
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    **config: Any,
) -> HubSpotConnector:
    client = build_client(
        base_url=None,
        credentials=credentials or {"access_token": "pat-na1-token"},
        on_refresh=on_refresh,
        sleep=(sleeps.append if sleeps is not None else _no_sleep),
    )
    # Search pacing has its own test; elsewhere every sleep must come from a retry or a limit.
    return HubSpotConnector(client, {"search_interval": 0, **config})


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def stream(conn: HubSpotConnector, name: str) -> Any:
    return next(s for s in conn.streams() if s.name == name)


def read(conn: HubSpotConnector, name: str, since: datetime | None = None) -> list[Page]:
    return list(stream(conn, name).pages(since))


def records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


# ------------------------------------------------------------------ mapping


def test_recorded_deals_map_string_properties(router: respx.MockRouter) -> None:
    recorded = load("mock_deals_data.json")
    for raw in recorded["results"]:
        raw["properties"]["hubspot_owner_id"] = OWNER
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=recorded)
    )

    pages = read(connector(), "deals")

    deals = {r["external_id"]: r for r in records(pages)}
    assert set(deals) == {"6744192456", "6744457152"}
    first = deals["6744192456"]
    assert first["amount"] == 500.0  # "500" on the wire
    assert first["currency"] == "USD"
    assert first["owner_external_id"] == OWNER
    assert first["name"] == "With Atul"
    assert (first["stage"], first["pipeline"]) == ("Qualified To Buy", "Sales Pipeline")
    assert (first["probability"], first["status"]) == (0.4, "open")
    assert first["created_at"] == datetime(2023, 2, 24, 3, 1, 1, 147000, tzinfo=UTC)
    assert first["close_date"] is None and first["closed_at"] is None
    assert first["source_modified_at"] == datetime(2023, 2, 24, 3, 1, 1, 711000, tzinfo=UTC)
    assert first["is_deleted"] is False
    assert deals["6744457152"]["amount"] == 3233.0
    # The page cursor is the highest hs_lastmodifieddate of the page.
    assert pages[-1].cursor == "2023-02-24T03:53:43.118000Z"


def test_recorded_deals_without_owner_are_rejected_not_raised(router: respx.MockRouter) -> None:
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=load("mock_deals_data.json"))
    )

    pages = read(connector(), "deals")

    assert records(pages) == []
    rejects = [r for p in pages for r in p.rejects]
    assert {(r.external_id, r.reason) for r in rejects} == {
        ("6744192456", "missing hubspot_owner_id"),
        ("6744457152", "missing hubspot_owner_id"),
    }
    assert rejects[0].raw["properties"]["dealname"] == "With Atul"
    assert sum(p.fetched for p in pages) == 2


def test_closed_stages_give_status_and_close_time(router: respx.MockRouter) -> None:
    results = [
        deal(1, T0, dealstage="closedwon", closedate="2026-02-27T16:30:00.000Z", amount="12500.50"),
        deal(
            2, T0 + 1, dealstage="closedlost", closedate="1772209800000", deal_currency_code="eur"
        ),
        deal(3, T0 + 2, dealstage="contractsent", closedate="2026-04-30T00:00:00.000Z"),
    ]
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": results})
    )

    got = {r["external_id"]: r for r in records(read(connector(), "deals"))}

    won, lost, open_ = got["1"], got["2"], got["3"]
    assert (won["status"], won["probability"], won["amount"]) == ("won", 1.0, 12500.5)
    assert won["closed_at"] == datetime(2026, 2, 27, 16, 30, tzinfo=UTC)
    assert won["close_date"] == date(2026, 2, 27)
    assert (lost["status"], lost["probability"], lost["currency"]) == ("lost", 0.0, "EUR")
    # Epoch milliseconds as a string, as some computed HubSpot properties are.
    assert lost["closed_at"] == datetime(2026, 2, 27, 16, 30, tzinfo=UTC)
    assert (open_["status"], open_["closed_at"], open_["close_date"]) == (
        "open",
        None,
        date(2026, 4, 30),
    )


def _california(router: respx.MockRouter) -> None:
    account = {**ACCOUNT, "timeZone": "America/Los_Angeles", "companyCurrency": "EUR"}
    router.routes["account"].mock(return_value=httpx.Response(200, json=account))
    results = [
        # 21:30 on 31 March in California: 1 April in UTC.
        deal(1, T0, dealstage="closedwon", closedate="2026-04-01T04:30:00.000Z"),
        deal(2, T0 + 1, dealstage="closedlost", closedate="1775017800000", deal_currency_code=""),
        # An open deal's forecast day, at midnight in the portal's zone.
        deal(3, T0 + 2, dealstage="contractsent", closedate="2026-04-30T07:00:00.000Z"),
    ]
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": results})
    )


def test_close_dates_fall_on_the_portals_day_and_amounts_in_its_currency(
    router: respx.MockRouter,
) -> None:
    """A portal in California with EUR as company currency (account-info): a deal won late on
    31 March local time is a March deal, and a deal without a currency code is in EUR."""
    _california(router)

    got = {r["external_id"]: r for r in records(read(connector(), "deals"))}

    won, lost, open_ = got["1"], got["2"], got["3"]
    assert won["close_date"] == date(2026, 3, 31)
    assert won["closed_at"] == datetime(2026, 4, 1, 4, 30, tzinfo=UTC)  # the instant is kept
    assert lost["close_date"] == date(2026, 3, 31)  # epoch ms of the same instant
    assert open_["close_date"] == date(2026, 4, 30)
    assert {r["currency"] for r in got.values()} == {"EUR"}
    assert router.routes["account"].call_count == 1


def test_the_sources_settings_override_the_account(router: respx.MockRouter) -> None:
    _california(router)

    conn = connector(timezone="Europe/Paris", default_currency="gbp")
    got = {r["external_id"]: r for r in records(read(conn, "deals"))}

    assert got["1"]["close_date"] == date(2026, 4, 1)  # 06:30 in Paris
    assert {r["currency"] for r in got.values()} == {"GBP"}
    assert not router.routes["account"].called  # nothing to ask the account


def test_a_host_without_the_account_api_counts_in_utc_and_usd(router: respx.MockRouter) -> None:
    _california(router)
    router.routes["account"].mock(return_value=httpx.Response(404, json={"status": "error"}))

    got = {r["external_id"]: r for r in records(read(connector(), "deals"))}

    assert got["1"]["close_date"] == date(2026, 4, 1)
    assert {r["currency"] for r in got.values()} == {"USD"}


def test_an_unknown_time_zone_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        connector(timezone="Mars/Olympus")


def test_malformed_records_are_quarantined_with_reasons(router: respx.MockRouter) -> None:
    results: list[Any] = [
        deal(1, T0),
        deal(2, T0 + 1, amount="12abc"),
        deal(3, T0 + 2, amount="-5"),
        deal(4, T0 + 3, dealstage="no_such_stage"),
        deal(5, T0 + 4, hubspot_owner_id=None),
        deal(6, T0 + 5, createdate="yesterday"),
        deal(7, T0 + 6, deal_currency_code="dollars"),
        deal(8, T0 + 7, closedate="1899-12-31T00:00:00Z"),
        {"id": "9", "properties": None},
        "not a record",
        deal(10, T0 + 9),
    ]
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": results})
    )

    pages = read(connector(), "deals")

    assert [r["external_id"] for r in records(pages)] == ["1", "10"]
    reasons = {r.external_id: r.reason for p in pages for r in p.rejects}
    assert reasons == {
        "2": "bad amount: '12abc'",
        "3": "negative amount: '-5'",
        "4": "unknown dealstage 'no_such_stage' in pipeline 'default'",
        "5": "missing hubspot_owner_id",
        "6": "bad createdate: 'yesterday'",
        "7": "bad currency: 'dollars'",
        "8": "implausible closedate: 1899-12-31",
        "9": "missing properties",
        None: "not an object: str",
    }
    assert sum(p.fetched for p in pages) == len(results)
    # Rejected records never move the cursor.
    assert pages[-1].cursor == "2026-03-02T09:00:00.009000Z"


# ------------------------------------------------------------------ incremental search


def test_search_sends_the_gte_filter_and_pages_by_timestamp(router: respx.MockRouter) -> None:
    fake = FakeSearch([deal(i, T0 + i * 1000) for i in range(1, 8)], page_limit=3)
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)
    since = datetime(2026, 3, 2, 9, 0, 2, 500_000, tzinfo=UTC)  # between deals 2 and 3

    pages = read(connector(page_size=3), "deals", since)

    assert [r["external_id"] for r in records(pages)] == ["3", "4", "5", "6", "7"]
    first = fake.bodies[0]
    assert first["filterGroups"] == [
        {
            "filters": [
                {
                    "propertyName": "hs_lastmodifieddate",
                    "operator": "GTE",
                    "value": str(T0 + 2500),
                }
            ]
        }
    ]
    assert first["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert first["limit"] == 3
    assert {"amount", "dealstage", "hubspot_owner_id", "hs_lastmodifieddate"} <= set(
        first["properties"]
    )
    # Each next query restarts from the last timestamp seen (GTE), never with an offset.
    assert [b["filterGroups"][0]["filters"][0]["value"] for b in fake.bodies[1:]] == [
        str(T0 + 5000)
    ]
    assert all("after" not in b for b in fake.bodies)
    assert [p.cursor for p in pages if p.records] == [
        "2026-03-02T09:00:05Z",
        "2026-03-02T09:00:07Z",
    ]


def test_full_read_sends_no_filter(router: respx.MockRouter) -> None:
    fake = FakeSearch([deal(1, T0)])
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)

    assert [r["external_id"] for r in records(read(connector(), "deals"))] == ["1"]
    assert fake.bodies[0]["filterGroups"] == []


def test_more_than_ten_thousand_results_never_hit_the_cap(router: respx.MockRouter) -> None:
    # 10,450 deals, with runs of equal timestamps (one run longer than a page) on the way.
    stamps = [T0 + i * 10 for i in range(10_000)]
    stamps += [T0 + 100_000] * 250 + [T0 + 100_010] * 3 + [T0 + 100_020 + i for i in range(197)]
    fake = FakeSearch([deal(i + 1, stamp) for i, stamp in enumerate(stamps)])
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)

    pages = read(connector(), "deals")

    ids = [r["external_id"] for r in records(pages)]
    assert len(ids) == len(set(ids)) == 10_450
    assert all(not p.rejects for p in pages)
    assert all(int(b.get("after") or 0) < 10_000 for b in fake.bodies)
    # The run of 250 equal timestamps was read by id (keyset on hs_object_id).
    assert any(b["sorts"][0]["propertyName"] == "hs_object_id" for b in fake.bodies)
    cursors = [c for p in pages if (c := parse_datetime(p.cursor, "cursor"))]
    assert cursors == sorted(cursors)


def test_a_record_changed_while_paging_is_not_skipped(router: respx.MockRouter) -> None:
    deals = [deal(i, T0 + i * 1000) for i in range(1, 10)]
    fake = FakeSearch(deals, page_limit=3)

    def edit_first(request_number: int) -> None:
        # After the first page, deal 1 is edited: it moves to the end of the sort order. With
        # offset paging everything would shift down one place and deal 4 would be skipped.
        if request_number == 2:
            deals[0]["properties"]["hs_lastmodifieddate"] = iso_ms(T0 + 60_000)
            deals[0]["properties"]["amount"] = "2000"

    fake.before = edit_first
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)

    got = records(read(connector(page_size=3), "deals"))

    assert {r["external_id"] for r in got} == {str(i) for i in range(1, 10)}
    assert [r["amount"] for r in got if r["external_id"] == "1"] == [1000.0, 2000.0]


def test_equal_timestamps_across_pages_are_read_once(router: respx.MockRouter) -> None:
    stamps = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 2, T0 + 3]
    fake = FakeSearch([deal(i + 1, s) for i, s in enumerate(stamps)], page_limit=2)
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)

    ids = [r["external_id"] for r in records(read(connector(page_size=2), "deals"))]

    assert sorted(ids, key=int) == [str(i) for i in range(1, 10)]


# ------------------------------------------------------------------ deletes


def test_archived_deals_arrive_first_as_deletes(router: respx.MockRouter) -> None:
    since = datetime(2026, 3, 1, tzinfo=UTC)
    old = deal(101, T0) | {"archived": True, "archivedAt": "2026-02-20T10:00:00.000Z"}
    new = deal(102, T0) | {"archived": True, "archivedAt": "2026-03-01T12:00:00.000Z"}
    undated = deal(103, T0) | {"archived": True}
    listed: list[dict[str, list[str]]] = []

    def archived(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        listed.append(query)
        if "after" not in query:
            page = {"results": [old, new], "paging": {"next": {"after": "103"}}}
            return httpx.Response(200, json=page)
        return httpx.Response(200, json={"results": [undated]})

    router.get("/crm/v3/objects/deals").mock(side_effect=archived)
    router.post("/crm/v3/objects/deals/search").mock(side_effect=FakeSearch([deal(1, T0)]))

    pages = read(connector(), "deals", since)

    assert [[r["external_id"] for r in p.records] for p in pages] == [["102"], ["103"], ["1"]]
    deletes = [r for p in pages[:2] for r in p.records]
    assert all(r["is_deleted"] for r in deletes)
    assert deletes[0]["source_modified_at"] == datetime(2026, 3, 1, 12, tzinfo=UTC)
    # Delete pages carry no cursor: the archived list is in id order, not change order.
    assert [p.cursor for p in pages] == [None, None, "2026-03-02T09:00:00Z"]
    assert listed[0]["archived"] == ["true"] and listed[1]["after"] == ["103"]
    assert "dealstage" in listed[0]["properties"][0].split(",")


# ------------------------------------------------------------------ owners and activities


def owner(ident: str, email: str, teams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "email": email,
        "type": "PERSON",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "userId": 1296619,
        "createdAt": "2025-05-01T10:00:00.000Z",
        "updatedAt": "2026-01-10T10:00:00.000Z",
        "archived": False,
        "teams": teams,
        **extra,
    }


def test_owners_active_then_archived_with_primary_team(router: respx.MockRouter) -> None:
    calls: list[dict[str, list[str]]] = []

    def owners(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        calls.append(query)
        if query["archived"] == ["true"]:
            gone = owner("300", "gone@example.com", [], updatedAt="2026-02-01T00:00:00.000Z")
            return httpx.Response(200, json={"results": [gone]})
        if "after" not in query:
            teams = [
                {"id": "1", "name": "Inbound", "primary": False},
                {"id": "178588", "name": "West Coast Sales", "primary": True},
            ]
            page = {
                "results": [owner(OWNER, "Ada@Example.com", teams)],
                "paging": {"next": {"after": "2"}},
            }
            return httpx.Response(200, json=page)
        queue = owner("400", "queue@example.com", []) | {"type": "QUEUE"}
        single = owner("200", "bo@example.com", [{"id": "9", "name": "EMEA"}])
        return httpx.Response(200, json={"results": [single, queue]})

    router.get("/crm/v3/owners").mock(side_effect=owners)

    pages = read(connector(), "owners")

    got = {r["external_id"]: r for r in records(pages)}
    assert got[OWNER] == {
        "external_id": OWNER,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "is_active": True,
        "manager_external_id": None,
        "team_name": "West Coast Sales",
    }
    assert got["200"]["team_name"] == "EMEA"
    assert (got["300"]["is_active"], got["300"]["team_name"]) == (False, None)
    assert [(r.external_id, r.reason) for p in pages for r in p.rejects] == [
        ("400", "owner type QUEUE is not a person")
    ]
    assert [c["archived"] for c in calls] == [["false"], ["false"], ["true"]]


def activity(object_type: str, ident: int, stamp: int, **props: Any) -> dict[str, Any]:
    subject = {
        "calls": "hs_call_title",
        "emails": "hs_email_subject",
        "meetings": "hs_meeting_title",
        "tasks": "hs_task_subject",
    }[object_type]
    properties = {
        "hs_timestamp": iso_ms(stamp - 3_600_000),
        "hubspot_owner_id": OWNER,
        "hs_lastmodifieddate": iso_ms(stamp),
        "hs_object_id": str(ident),
        subject: f"{object_type} {ident}",
        **props,
    }
    return {"id": str(ident), "properties": properties, "archived": False}


def test_activities_merge_four_types_in_change_order(router: respx.MockRouter) -> None:
    data = {
        "calls": [activity("calls", 11, T0 + 5), activity("calls", 12, T0 + 40)],
        "emails": [activity("emails", 21, T0 + 10, hs_timestamp=str(T0 - 1000))],
        "meetings": [activity("meetings", 31, T0 + 30)],
        "tasks": [activity("tasks", 41, T0 + 20), activity("tasks", 42, T0 + 50, hs_timestamp="")],
    }
    searches: dict[str, FakeSearch] = {
        t: FakeSearch(rows, page_limit=1) for t, rows in data.items()
    }
    links = {"11": 9001, "31": 9003}
    archived_call = activity("calls", 13, T0) | {
        "archived": True,
        "archivedAt": "2026-03-02T10:00:00.000Z",
        "associations": {"deals": {"results": [{"id": "9002", "type": "call_to_deal"}]}},
    }
    lists: list[dict[str, list[str]]] = []

    def search(request: httpx.Request) -> httpx.Response:
        return searches[request.url.path.split("/")[4]](request)

    def archived(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        lists.append(query)
        rows = [archived_call] if request.url.path.endswith("/calls") else []
        return httpx.Response(200, json={"results": rows})

    def associations(request: httpx.Request) -> httpx.Response:
        # Activities without a deal make it a 207 with errors, which is a success.
        return associations_answer(request, {a: [to(d, CALL_TO_DEAL)] for a, d in links.items()})

    router.post(path__regex=r"^/crm/v3/objects/\w+/search$").mock(side_effect=search)
    router.get(path__regex=r"^/crm/v3/objects/(calls|emails|meetings|tasks)$").mock(
        side_effect=archived
    )
    router.post(path__regex=r"^/crm/v4/associations/\w+/deals/batch/read$").mock(
        side_effect=associations
    )

    pages = read(connector(page_size=2), "activities")

    deleted = pages[0].records
    assert [(r["external_id"], r["is_deleted"], r["deal_external_id"]) for r in deleted] == [
        ("13", True, "9002")
    ]
    assert all(q["associations"] == ["deals"] for q in lists)
    # Pages follow hs_lastmodifieddate across all four types (inside a page, grouped by type).
    assert [{r["external_id"] for r in p.records} for p in pages[1:]] == [
        {"11", "21"},
        {"41", "31"},
        {"12"},
    ]
    live = records(pages[1:])
    by_id = {r["external_id"]: r for r in live}
    assert [by_id[i]["type"] for i in ("11", "21", "31", "41")] == [
        "call",
        "email",
        "meeting",
        "task",
    ]
    assert by_id["11"]["deal_external_id"] == "9001"
    assert by_id["12"]["deal_external_id"] is None
    assert by_id["31"]["subject"] == "meetings 31"
    # hs_timestamp as epoch milliseconds (emails) or ISO (calls).
    assert by_id["21"]["occurred_at"] == datetime(2026, 3, 2, 8, 59, 59, tzinfo=UTC)
    assert by_id["11"]["occurred_at"] == datetime(2026, 3, 2, 8, 0, 0, 5000, tzinfo=UTC)
    assert [(r.external_id, r.reason) for p in pages for r in p.rejects] == [
        ("42", "missing hs_timestamp")
    ]
    cursors = [c for p in pages[1:] if (c := parse_datetime(p.cursor, "cursor"))]
    assert cursors == sorted(cursors)


# ------------------------------------------------------------------ retries, auth, limits


def test_429_is_retried_after_retry_after(router: respx.MockRouter) -> None:
    router.post("/crm/v3/objects/deals/search").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json=RATE_LIMITED),
            httpx.Response(200, json={"results": [deal(1, T0)]}),
        ]
    )
    sleeps: list[float] = []

    got = records(read(connector(sleeps=sleeps), "deals"))

    assert [r["external_id"] for r in got] == ["1"]
    assert sleeps == [7.0]


def test_5xx_is_retried_with_backoff(router: respx.MockRouter) -> None:
    route = router.post("/crm/v3/objects/deals/search").mock(
        side_effect=[
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(200, json={"results": [deal(1, T0)]}),
        ]
    )
    sleeps: list[float] = []

    got = records(read(connector(sleeps=sleeps), "deals"))

    assert [r["external_id"] for r in got] == ["1"]
    assert route.call_count == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_expired_oauth_token_is_refreshed_once(router: respx.MockRouter) -> None:
    seen: list[str] = []

    def pipelines(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") == "Bearer fresh":
            return httpx.Response(200, json=PIPELINES)
        return httpx.Response(401, json=EXPIRED)

    token = router.post("/oauth/v1/token").mock(
        return_value=httpx.Response(
            200,
            json={
                "access_token": "fresh",
                "refresh_token": "refresh-2",
                "token_type": "bearer",
                "expires_in": 1800,
            },
        )
    )
    router.get("/crm/v3/pipelines/deals").mock(side_effect=pipelines)
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": [deal(1, T0)]})
    )
    refreshed: list[dict[str, Any]] = []
    credentials = {
        "client_id": "cid",
        "client_secret": "secret",
        "refresh_token": "refresh-1",
        "access_token": "stale",
    }

    got = records(read(connector(credentials, on_refresh=refreshed.append), "deals"))

    assert [r["external_id"] for r in got] == ["1"]
    assert seen == ["Bearer stale", "Bearer fresh"]
    assert token.call_count == 1
    form = parse_qs(token.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-1"],
        "client_id": ["cid"],
        "client_secret": ["secret"],
    }
    assert refreshed[0]["refresh_token"] == "refresh-2"


def test_a_second_401_fails_with_auth_error(router: respx.MockRouter) -> None:
    token = router.post("/oauth/v1/token").mock(
        return_value=httpx.Response(200, json={"access_token": "fresh", "expires_in": 1800})
    )
    router.get("/crm/v3/pipelines/deals").mock(return_value=httpx.Response(401, json=EXPIRED))
    credentials = {"client_id": "cid", "client_secret": "s", "refresh_token": "r"}

    with pytest.raises(CrmAuthError) as info:
        read(connector(credentials), "deals")

    assert token.call_count == 1
    assert info.value.status == 401 and "EXPIRED_AUTHENTICATION" in info.value.body


def test_a_private_app_token_is_not_refreshed(router: respx.MockRouter) -> None:
    token = router.post("/oauth/v1/token")
    router.get("/crm/v3/pipelines/deals").mock(return_value=httpx.Response(401, json=EXPIRED))

    with pytest.raises(CrmAuthError):
        read(connector(), "deals")

    assert token.call_count == 0


def test_build_client_needs_credentials() -> None:
    with pytest.raises(ValueError, match="access_token"):
        build_client(base_url=None, credentials={})
    client = build_client(base_url="http://sandbox:8801/", credentials={"access_token": "t"})
    assert isinstance(client, CrmClient) and client.base_url == "http://sandbox:8801"


def rate_headers(remaining: int, limit: int = 100, interval: int = 10_000) -> dict[str, str]:
    return {
        "X-HubSpot-RateLimit-Max": str(limit),
        "X-HubSpot-RateLimit-Remaining": str(remaining),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval),
    }


def test_limits_hook_reads_hubspot_headers() -> None:
    limits = limits_from_headers(httpx.Response(200, headers=rate_headers(42)))
    assert (limits.remaining, limits.limit, limits.reset_seconds) == (42, 100, 10.0)
    secondly = httpx.Response(
        200,
        headers={
            "X-HubSpot-RateLimit-Secondly": "10",
            "X-HubSpot-RateLimit-Secondly-Remaining": "3",
        },
    )
    assert limits_from_headers(secondly).reset_seconds == 1.0
    # Search answers carry no rate-limit headers at all.
    empty = limits_from_headers(httpx.Response(200))
    assert (empty.remaining, empty.limit, empty.reset_seconds) == (None, None, None)
    garbled = limits_from_headers(
        httpx.Response(200, headers=rate_headers(0) | {"X-HubSpot-RateLimit-Max": "many"})
    )
    assert garbled.limit is None


def test_client_slows_down_before_the_limit(router: respx.MockRouter) -> None:
    router.get("/crm/v3/owners").mock(
        side_effect=[
            httpx.Response(
                200,
                json={"results": [owner("1", "a@x.io", [])], "paging": {"next": {"after": "1"}}},
                headers=rate_headers(50),
            ),
            httpx.Response(
                200, json={"results": [owner("2", "b@x.io", [])]}, headers=rate_headers(5)
            ),
            httpx.Response(200, json=EMPTY, headers=rate_headers(4)),
        ]
    )
    sleeps: list[float] = []

    got = records(read(connector(sleeps=sleeps), "owners"))

    assert [r["external_id"] for r in got] == ["1", "2"]
    # Plenty left: no wait. 5 of 100 left in a 10 s window: spread them out (10 s / 5, / 4).
    assert sleeps == [2.0, 2.5]


def test_pipelines_are_read_once_per_connector(router: respx.MockRouter) -> None:
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": [deal(1, T0)]})
    )
    conn = connector()

    read(conn, "deals")
    read(conn, "deals", datetime.now(UTC) - timedelta(days=1))

    assert router.routes[0].call_count == 1


def test_a_stage_added_since_the_pipelines_were_read_is_read_again(
    router: respx.MockRouter,
) -> None:
    """A deal moved to a stage created after the run read the pipelines: the pipelines are
    read once more and the deal maps, instead of going to quarantine; a stage that is still
    unknown then is rejected without reading them a third time."""
    added = copy.deepcopy(PIPELINES)
    added["results"][0]["stages"].append(
        {
            "id": "negotiation",
            "label": "Negotiation",
            "displayOrder": 5,
            "archived": False,
            "metadata": {"isClosed": "false", "probability": "0.7"},
        }
    )
    pipelines = router.get("/crm/v3/pipelines/deals").mock(
        side_effect=[httpx.Response(200, json=PIPELINES), httpx.Response(200, json=added)]
    )
    results = [deal(1, T0, dealstage="negotiation"), deal(2, T0 + 1, dealstage="nowhere")]
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": results})
    )

    pages = read(connector(), "deals")

    (mapped,) = records(pages)
    assert (mapped["external_id"], mapped["stage"], mapped["probability"]) == (
        "1",
        "Negotiation",
        0.7,
    )
    assert [(r.external_id, r.reason) for p in pages for r in p.rejects] == [
        ("2", "unknown dealstage 'nowhere' in pipeline 'default'")
    ]
    assert pipelines.call_count == 2


@pytest.mark.parametrize("host", [None, "https://hubspot-proxy.example.com"])
def test_searches_are_spaced_whatever_the_host(host: str | None) -> None:
    """The search limit is HubSpot's, not the host's: behind a proxy or a regional host
    searches are spaced too, by default."""
    fake = FakeSearch([deal(i, T0 + i) for i in range(1, 6)], page_limit=2)
    base = host or BASE
    with respx.mock(base_url=base, assert_all_called=False) as mock:
        mock.get("/crm/v3/pipelines/deals").mock(return_value=httpx.Response(200, json=PIPELINES))
        mock.get("/account-info/v3/details").mock(return_value=httpx.Response(200, json=ACCOUNT))
        mock.get("/crm/v3/objects/deals").mock(return_value=httpx.Response(200, json=EMPTY))
        mock.post("/crm/v3/objects/deals/search").mock(side_effect=fake)
        mock.post("/crm/v4/associations/deals/companies/batch/read").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETE", "results": []})
        )
        sleeps: list[float] = []
        client = build_client(base_url=host, credentials={"access_token": "t"}, sleep=sleeps.append)
        conn = HubSpotConnector(client, {"page_size": 2})

        assert len(records(read(conn, "deals"))) == 5

    # Search answers carry no rate-limit headers: every search after the first waits its turn.
    assert len(fake.bodies) >= 3
    assert len(sleeps) == len(fake.bodies) - 1 and all(0 < s <= 0.22 for s in sleeps)


def test_the_search_interval_setting_overrides_the_default() -> None:
    sandbox = build_client(base_url="http://127.0.0.1:8801", credentials={"access_token": "t"})
    assert HubSpotConnector(sandbox).search_interval == pytest.approx(0.22)
    assert HubSpotConnector(sandbox, {"search_interval": 0}).search_interval == 0.0
    assert HubSpotConnector(sandbox, {"search_interval": "1.5"}).search_interval == 1.5


@respx.mock
def test_daily_limit_429_pauses_at_once_instead_of_retrying() -> None:
    from connectors.http import BudgetPaused
    from connectors.hubspot import build_client

    waits: list[float] = []
    route = respx.get("https://api.hubapi.com/crm/v3/owners").mock(
        return_value=httpx.Response(
            429,
            json={
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
                "correlationId": "x",
            },
        )
    )
    client = build_client(base_url=None, credentials={"access_token": "t"}, sleep=waits.append)
    with pytest.raises(BudgetPaused, match="paused: daily API budget"):
        client.get_json("/crm/v3/owners")
    assert route.call_count == 1 and waits == []
