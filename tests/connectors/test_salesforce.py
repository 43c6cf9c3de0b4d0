"""The Salesforce connector against recorded responses (respx): paging, SOQL, auth, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.http import BudgetPaused, CrmAuthError, CrmError, RetryableError
from connectors.salesforce import (
    KIND,
    SalesforceConnector,
    build_client,
    error_codes,
    soql,
)
from tests.conftest import SHARED

FIXTURES = SHARED / "fixtures" / "crm" / "salesforce"
BASE = "https://acme.my.salesforce.com"
LOGIN = "https://login.salesforce.com"
QUERY_ALL = f"{BASE}/services/data/v60.0/queryAll"
QUERY = f"{BASE}/services/data/v60.0/query"
TOKEN = f"{LOGIN}/services/oauth2/token"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def page(records: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"totalSize": len(records), "done": next_url is None}
    if next_url:
        body["nextRecordsUrl"] = next_url
    body["records"] = records
    return body


def sobject(obj: str, ident: str, stamp: str | None, **fields: Any) -> dict[str, Any]:
    url = f"/services/data/v60.0/sobjects/{obj}/{ident}"
    return {"attributes": {"type": obj, "url": url}, "Id": ident, "SystemModstamp": stamp, **fields}


def opportunity(ident: str = "0065g00000AbCdEAAV", **fields: Any) -> dict[str, Any]:
    record = {
        "Name": "Acme - New Business",
        "OwnerId": "0055g00000OwNeRAAA",
        "Amount": 12500.0,
        "StageName": "Proposal",
        "IsClosed": False,
        "IsWon": False,
        "CloseDate": "2024-03-29",
        "CreatedDate": "2024-01-15T09:30:00.000+0000",
        "Probability": 50.0,
        "Account": {"attributes": {"type": "Account"}, "Name": "Acme Corp"},
        "CurrencyIsoCode": "EUR",
        "IsDeleted": False,
    }
    record.update(fields)
    stamp = record.pop("SystemModstamp", "2024-02-01T10:00:00.000+0000")
    return sobject("Opportunity", ident, str(stamp) if stamp else None, **record)


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
        yield router


def connector(
    waits: Waits, credentials: dict[str, Any] | None = None, **config: Any
) -> SalesforceConnector:
    client = build_client(
        base_url=BASE, credentials=credentials or {"access_token": "tok"}, sleep=waits
    )
    return SalesforceConnector(client, config)


def q_of(request: httpx.Request) -> str:
    return request.url.params["q"]


def read(stream_name: str, conn: SalesforceConnector, since: datetime | None = None) -> list[Any]:
    stream = next(s for s in conn.streams() if s.name == stream_name)
    return list(stream.pages(since))


# ------------------------------------------------------------------ paging and SOQL


def test_kind_and_stream_order(waits: Waits) -> None:
    assert KIND == "salesforce"
    assert [s.name for s in connector(waits).streams()] == ["owners", "deals", "activities"]


def test_query_follows_next_records_url(mock: respx.MockRouter, waits: Waits) -> None:
    first = mock.get(QUERY_ALL).respond(json=fixture("query_paginated_first_page_response.json"))
    last = mock.get(f"{BASE}/services/data/v26.0/query/01gD").respond(
        json=fixture("query_paginated_last_page_response.json")
    )
    batches = list(connector(waits).raw_pages("SELECT Text_Label FROM Whizbang"))
    assert [[r["Text_Label"] for r in b] for b in batches] == [["First Page"], ["Last Page"]]
    assert first.call_count == 1 and last.call_count == 1
    # The locator URL carries no query string: the SOQL is only sent once.
    assert "q" not in last.calls[0].request.url.params


def test_empty_result_yields_no_records(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).respond(json=fixture("query_empty_response.json"))
    pages = read("deals", connector(waits))
    assert sum(len(p.records) for p in pages) == 0


def test_query_without_deleted_rows_uses_query(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(f"{BASE}/services/data/v60.0/query").respond(
        json=fixture("query_success_response.json")
    )
    batches = list(connector(waits).raw_pages("SELECT Id FROM X", include_deleted=False))
    assert route.called and batches[0][0]["Text_Label"] == "Hi there!"


def test_done_false_without_next_url_is_an_error(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).respond(json={"totalSize": 5, "done": False, "records": []})
    with pytest.raises(CrmError, match="nextRecordsUrl"):
        read("owners", connector(waits))


def test_incremental_filter_is_an_unquoted_datetime(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).respond(json=page([]))
    since = datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    read("deals", connector(waits), since)
    sent = q_of(route.calls[0].request)
    # Floored to the second: >= then still includes the record the cursor came from.
    assert (
        "WHERE SystemModstamp >= 2024-01-02T03:04:05Z ORDER BY SystemModstamp ASC, Id ASC" in sent
    )
    assert sent.startswith("SELECT Id, Name, OwnerId, Amount, StageName, IsClosed, IsWon")
    assert "FROM Opportunity" in sent and "CurrencyIsoCode" in sent and "Account.Name" in sent
    raw = str(route.calls[0].request.url)
    assert " " not in raw and "%3E%3D" in raw and "'" not in sent


def test_full_read_has_no_filter(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).respond(json=page([]))
    read("owners", connector(waits))
    assert q_of(route.calls[0].request) == (
        "SELECT Id, Name, Email, IsActive, ManagerId, SystemModstamp FROM User "
        "ORDER BY SystemModstamp ASC, Id ASC LIMIT 50000"
    )


def test_soql_treats_naive_since_as_utc() -> None:
    assert soql("Task", ("Id",), datetime(2024, 5, 1, 12)) == (
        "SELECT Id FROM Task WHERE SystemModstamp >= 2024-05-01T12:00:00Z "
        "ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_api_version_from_credentials_or_config(mock: respx.MockRouter, waits: Waits) -> None:
    v58 = mock.get(f"{BASE}/services/data/v58.0/queryAll").respond(json=page([]))
    v59 = mock.get(f"{BASE}/services/data/v59.0/queryAll").respond(json=page([]))
    client = build_client(
        base_url=None,
        credentials={"instance_url": BASE, "access_token": "t", "api_version": "58.0"},
    )
    read("owners", SalesforceConnector(client))
    read("owners", SalesforceConnector(client, {"api_version": "v59.0"}))
    assert v58.call_count == 1 and v59.call_count == 1


def test_build_client_needs_instance_and_credentials() -> None:
    with pytest.raises(ValueError, match="instance_url"):
        build_client(base_url=None, credentials={"access_token": "t"})
    with pytest.raises(ValueError, match="access_token"):
        build_client(base_url=BASE, credentials={})


# ------------------------------------------------------------------ mapping


def test_deals_map_status_probability_and_deletes(mock: respx.MockRouter, waits: Waits) -> None:
    records = [
        opportunity("0065g0000000001AAA"),
        opportunity(
            "0065g0000000002AAA",
            IsClosed=True,
            IsWon=True,
            Probability=100,
            StageName="Closed Won",
            SystemModstamp="2024-02-02T10:00:00.000+0000",
        ),
        opportunity(
            "0065g0000000003AAA",
            IsClosed=True,
            IsWon=False,
            Probability=0,
            Amount=None,
            Account=None,
            IsDeleted=True,
            SystemModstamp="2024-02-03T11:12:13.456+0000",
        ),
    ]
    mock.get(QUERY_ALL).respond(json=page(records))
    (result,) = read("deals", connector(waits))
    assert not result.rejects and result.fetched == 3
    open_, won, lost = result.records
    assert open_ == {
        "external_id": "0065g0000000001AAA",
        "owner_external_id": "0055g00000OwNeRAAA",
        "name": "Acme - New Business",
        "account": "Acme Corp",
        "amount": 12500.0,
        "currency": "EUR",
        "stage": "Proposal",
        "pipeline": "default",
        "probability": 0.5,
        "status": "open",
        "created_at": datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
        "close_date": date(2024, 3, 29),
        "closed_at": None,
        "source_modified_at": datetime(2024, 2, 1, 10, tzinfo=UTC),
        "is_deleted": False,
    }
    assert (won["status"], won["probability"]) == ("won", 1.0)
    assert (lost["status"], lost["probability"], lost["amount"]) == ("lost", 0.0, None)
    assert lost["is_deleted"] is True and lost["account"] is None
    assert result.cursor == "2024-02-03T11:12:13.456000Z"


def test_owners_map_manager(mock: respx.MockRouter, waits: Waits) -> None:
    users = [
        sobject(
            "User",
            "0055g0000000001AAA",
            "2023-06-01T08:00:00.000+0000",
            Name="Vera Boss",
            Email="Vera.Boss@Example.com",
            IsActive=True,
            ManagerId=None,
        ),
        sobject(
            "User",
            "0055g0000000002AAA",
            "2023-07-01T08:00:00.000+0000",
            Name="Rep <b>One</b>",
            Email="rep.one@example.com",
            IsActive=False,
            ManagerId="0055g0000000001AAA",
        ),
    ]
    mock.get(QUERY_ALL).respond(json=page(users))
    (result,) = read("owners", connector(waits))
    boss, rep = result.records
    assert boss["manager_external_id"] is None and boss["email"] == "vera.boss@example.com"
    assert rep["manager_external_id"] == "0055g0000000001AAA"
    assert rep["is_active"] is False and rep["name"] == "Rep ‹b›One‹/b›"
    assert rep["team_name"] is None
    assert result.cursor == "2023-07-01T08:00:00Z"


def test_activities_merge_tasks_and_events(mock: respx.MockRouter, waits: Waits) -> None:
    tasks = [
        sobject(
            "Task",
            "00T5g0000000001EAA",
            "2024-03-01T10:00:00.000+0000",
            OwnerId="005A",
            Subject="Call",
            TaskSubtype="Call",
            Type=None,
            ActivityDate="2024-03-01",
            CreatedDate="2024-03-01T09:45:00.000+0000",
            WhatId="0065g0000000001AAA",
            IsDeleted=False,
        ),
        sobject(
            "Task",
            "00T5g0000000002EAA",
            "2024-03-05T10:00:00.000+0000",
            OwnerId="005A",
            Subject="Sent",
            TaskSubtype="Task",
            Type="Email",
            # Logged two days after the day it happened.
            ActivityDate="2024-03-03",
            CreatedDate="2024-03-05T09:00:00.000+0000",
            WhatId="0015g0000000001AAA",
            IsDeleted=True,
        ),
        sobject(
            "Task",
            "00T5g0000000003EAA",
            "2024-03-07T10:00:00.000+0000",
            OwnerId="005B",
            Subject="Prep",
            TaskSubtype="Task",
            Type="Other",
            ActivityDate=None,
            CreatedDate="2024-03-07T08:00:00.000+0000",
            WhatId=None,
            IsDeleted=False,
        ),
    ]
    events = [
        sobject(
            "Event",
            "00U5g0000000001UAA",
            "2024-03-02T10:00:00.000+0000",
            OwnerId="005B",
            Subject="Demo",
            EventSubtype="Event",
            StartDateTime="2024-03-04T15:00:00.000+0000",
            ActivityDateTime="2024-03-04T15:00:00.000+0000",
            ActivityDate="2024-03-04",
            WhatId="0065g0000000002AAA",
            IsDeleted=False,
        )
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        q = q_of(request)
        return httpx.Response(200, json=page(tasks if "FROM Task" in q else events))

    route = mock.get(QUERY_ALL).mock(side_effect=answer)
    pages = read("activities", connector(waits))
    records = [r for p in pages for r in p.records]
    assert [r["external_id"][:3] for r in records] == ["00T", "00U", "00T", "00T"]
    call, meeting, email, task = records
    assert (call["type"], call["occurred_at"]) == ("call", datetime(2024, 3, 1, 9, 45, tzinfo=UTC))
    assert call["deal_external_id"] == "0065g0000000001AAA"
    assert (meeting["type"], meeting["occurred_at"]) == (
        "meeting",
        datetime(2024, 3, 4, 15, tzinfo=UTC),
    )
    assert meeting["deal_external_id"] == "0065g0000000002AAA"
    # The day it happened (at noon UTC), not when it was logged; an Account is not a deal.
    assert email["type"] == "email" and email["occurred_at"] == datetime(2024, 3, 3, 12, tzinfo=UTC)
    assert email["deal_external_id"] is None and email["is_deleted"] is True
    assert task["type"] == "task" and task["occurred_at"] == datetime(2024, 3, 7, 8, tzinfo=UTC)
    sent = [q_of(c.request) for c in route.calls]
    assert any("FROM Task" in q and "TaskSubtype" in q and "WhatId" in q for q in sent)
    assert any("FROM Event" in q and "StartDateTime" in q and "EventSubtype" in q for q in sent)
    cursors = [p.cursor for p in pages if p.cursor]
    assert cursors == sorted(cursors) and cursors[-1] == "2024-03-07T10:00:00Z"


def test_an_all_day_event_is_on_its_day(mock: respx.MockRouter, waits: Waits) -> None:
    """Salesforce stores an all-day Event at 00:00 GMT of its day (the day before in the
    Americas): its ActivityDate is the day, taken at 12:00 UTC like other date-only
    activities."""
    event = sobject(
        "Event",
        "00U5g0000000009UAA",
        "2026-03-31T18:00:00.000+0000",
        OwnerId="005B",
        Subject="Trade show",
        EventSubtype="Event",
        IsAllDayEvent=True,
        StartDateTime="2026-03-31T00:00:00.000+0000",
        ActivityDateTime="2026-03-31T00:00:00.000+0000",
        ActivityDate="2026-03-31",
        WhatId=None,
        IsDeleted=False,
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=page([event] if "FROM Event" in q_of(request) else []))

    route = mock.get(QUERY_ALL).mock(side_effect=answer)
    (meeting,) = [r for p in read("activities", connector(waits)) for r in p.records]
    assert meeting["occurred_at"] == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert any("IsAllDayEvent" in q_of(c.request) for c in route.calls)


def test_malformed_records_are_rejects(mock: respx.MockRouter, waits: Waits) -> None:
    records: list[Any] = [
        opportunity("0065g0000000001AAA", Amount="lots"),
        opportunity("0065g0000000002AAA", OwnerId=None),
        opportunity("0065g0000000003AAA", Probability=150),
        opportunity("0065g0000000004AAA", SystemModstamp=None),
        opportunity("0065g0000000005AAA", CloseDate="2024-13-45"),
        opportunity("0065g0000000006AAA", CurrencyIsoCode="EURO"),
        opportunity("0065g0000000007AAA", StageName=""),
        opportunity("0065g0000000008AAA", CreatedDate="yesterday"),
        "not a record",
        opportunity("0065g0000000009AAA", SystemModstamp="2024-01-01T00:00:00.000+0000"),
    ]
    mock.get(QUERY_ALL).respond(json=page(records))
    (result,) = read("deals", connector(waits))
    assert [r["external_id"] for r in result.records] == ["0065g0000000009AAA"]
    reasons = {r.external_id: r.reason for r in result.rejects}
    assert reasons == {
        "0065g0000000001AAA": "bad Amount: 'lots'",
        "0065g0000000002AAA": "missing OwnerId",
        "0065g0000000003AAA": "implausible Probability: 150.0",
        "0065g0000000004AAA": "missing SystemModstamp",
        "0065g0000000005AAA": "bad CloseDate: '2024-13-45'",
        "0065g0000000006AAA": "bad currency: 'EURO'",
        "0065g0000000007AAA": "missing StageName",
        "0065g0000000008AAA": "bad CreatedDate: 'yesterday'",
        None: "not an object: str",
    }
    # Rejected records do not move the cursor.
    assert result.cursor == "2024-01-01T00:00:00Z" and result.fetched == 10


def test_fixture_records_of_another_shape_are_rejects(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).respond(json=fixture("query_paginated_first_page_response.json"))
    mock.get(f"{BASE}/services/data/v26.0/query/01gD").respond(
        json=fixture("query_paginated_last_page_response.json")
    )
    pages = read("activities", connector(waits))
    rejects = [r for p in pages for r in p.rejects]
    assert len(rejects) == 4 and not any(p.records for p in pages)
    assert {r.reason for r in rejects} == {"not a Task or Event: Whizbang"}
    assert rejects[0].raw["Text_Label"] in {"First Page", "Last Page"}


# ------------------------------------------------------------------ currency detection


def _single_currency_org(mock: respx.MockRouter) -> list[str]:
    """A single-currency org: a query naming CurrencyIsoCode is a 400 INVALID_FIELD; returns
    the queries sent, as they are sent."""
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(q_of(request))
        if "CurrencyIsoCode" in sent[-1]:
            return httpx.Response(400, json=fixture("query_error_response.json"))
        return httpx.Response(200, json=page([opportunity(CurrencyIsoCode=None)]))

    mock.get(QUERY_ALL).mock(side_effect=answer)
    return sent


def test_invalid_field_currency_falls_back_once(mock: respx.MockRouter, waits: Waits) -> None:
    sent = _single_currency_org(mock)
    conn = connector(waits, default_currency="gbp")
    (result,) = read("deals", conn)
    assert result.records[0]["currency"] == "GBP"
    assert ["CurrencyIsoCode" in q for q in sent] == [True, False]
    assert conn.multi_currency is False
    read("deals", conn)
    assert ["CurrencyIsoCode" in q for q in sent] == [True, False, False]
    assert not waits  # a 400 is not retried


def test_invalid_field_naming_another_field_surfaces(mock: respx.MockRouter, waits: Waits) -> None:
    body = [
        {
            "message": "No such column 'Probability' on entity 'Opportunity'.",
            "errorCode": "INVALID_FIELD",
        }
    ]
    route = mock.get(QUERY_ALL).respond(400, json=body)
    with pytest.raises(CrmError) as caught:
        read("deals", connector(waits))
    assert caught.value.status == 400 and "INVALID_FIELD" in caught.value.body
    assert route.call_count == 1


def test_multi_currency_detected_and_remembered(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).respond(json=page([opportunity()]))
    conn = connector(waits)
    read("deals", conn)
    assert conn.multi_currency is True
    read("deals", conn)
    assert all("CurrencyIsoCode" in q_of(c.request) for c in route.calls)


def test_configured_single_currency_never_asks(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).respond(json=page([opportunity(CurrencyIsoCode=None)]))
    org = {"attributes": {"type": "Organization"}, "DefaultCurrencyIsoCode": "CAD"}
    mock.get(QUERY).respond(json=page([org]))
    (result,) = read("deals", connector(waits, multi_currency=False))
    assert "CurrencyIsoCode" not in q_of(route.calls[0].request)
    assert result.records[0]["currency"] == "CAD"


def test_a_single_currency_orgs_amounts_are_in_its_currency(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """No CurrencyIsoCode on the deals: the org's DefaultCurrencyIsoCode, asked once, not USD."""
    _single_currency_org(mock)
    org = {"attributes": {"type": "Organization"}, "DefaultCurrencyIsoCode": "JPY"}
    orgs = mock.get(QUERY).respond(json=page([org]))
    conn = connector(waits)
    for _ in range(2):
        (result,) = read("deals", conn)
        assert result.records[0]["currency"] == "JPY"
    assert orgs.call_count == 1
    assert "FROM Organization" in q_of(orgs.calls[0].request)


# ------------------------------------------------------------------ auth


OAUTH = {
    "client_id": "cid",
    "client_secret": "secret",
    "refresh_token": "r1",
    "access_token": "old",
}


def test_invalid_session_refreshes_and_retries(mock: respx.MockRouter, waits: Waits) -> None:
    data = mock.get(QUERY_ALL).mock(
        side_effect=[
            httpx.Response(401, json=fixture("expired_session_response.json")),
            httpx.Response(200, json=page([opportunity()])),
        ]
    )
    token = mock.post(TOKEN).respond(json=fixture("refresh_success_response.json"))
    refreshed: list[dict[str, Any]] = []
    client = build_client(base_url=BASE, credentials=OAUTH, on_refresh=refreshed.append)
    (result,) = read("deals", SalesforceConnector(client))
    assert len(result.records) == 1
    assert [c.request.headers["Authorization"] for c in data.calls] == [
        "Bearer old",
        "Bearer refreshed_access_token",
    ]
    form = parse_qs(token.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["r1"],
        "client_id": ["cid"],
        "client_secret": ["secret"],
    }
    assert refreshed[0]["instance_url"] == "https://na1.salesforce.com"


def test_custom_login_url(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).mock(
        side_effect=[httpx.Response(401, json=[]), httpx.Response(200, json=page([]))]
    )
    token = mock.post("https://test.salesforce.com/services/oauth2/token").respond(
        json=fixture("refresh_success_response.json")
    )
    creds = {**OAUTH, "login_url": "https://test.salesforce.com/"}
    read("owners", SalesforceConnector(build_client(base_url=BASE, credentials=creds)))
    assert token.called


def test_refresh_failure_is_auth_error(mock: respx.MockRouter, waits: Waits) -> None:
    data = mock.get(QUERY_ALL).respond(401, json=fixture("expired_session_response.json"))
    mock.post(TOKEN).respond(400, json=fixture("refresh_error_response.json"))
    with pytest.raises(CrmAuthError) as caught:
        read("deals", SalesforceConnector(build_client(base_url=BASE, credentials=OAUTH)))
    assert "INVALID_SESSION_ID" in caught.value.body
    assert data.call_count == 1


def test_static_token_refused_without_refresh(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).respond(401, json=fixture("expired_session_response.json"))
    token = mock.post(TOKEN)
    with pytest.raises(CrmAuthError):
        read("owners", connector(waits))
    assert not token.called and not waits


# ------------------------------------------------------------------ limits and retries


LIMIT_EXCEEDED = [
    {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]


def test_request_limit_exceeded_backs_off(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).mock(
        side_effect=[
            httpx.Response(403, json=LIMIT_EXCEEDED),
            httpx.Response(403, json=LIMIT_EXCEEDED),
            httpx.Response(200, json=page([opportunity()])),
        ]
    )
    (result,) = read("deals", connector(waits))
    assert len(result.records) == 1 and route.call_count == 3
    assert len(waits) == 2 and all(w >= 0 for w in waits)


def test_request_limit_exceeded_gives_up_eventually(mock: respx.MockRouter, waits: Waits) -> None:
    route = mock.get(QUERY_ALL).respond(403, json=LIMIT_EXCEEDED)
    with pytest.raises(RetryableError):
        read("owners", connector(waits))
    assert route.call_count == 6 and len(waits) == 5


def test_other_403_is_not_retried(mock: respx.MockRouter, waits: Waits) -> None:
    body = [{"message": "API is not enabled for this Organization", "errorCode": "API_DISABLED"}]
    route = mock.get(QUERY_ALL).respond(403, json=body)
    with pytest.raises(CrmError) as caught:
        read("owners", connector(waits))
    assert route.call_count == 1 and not waits and caught.value.status == 403


def test_429_honours_retry_after(mock: respx.MockRouter, waits: Waits) -> None:
    mock.get(QUERY_ALL).mock(
        side_effect=[
            httpx.Response(429, json=LIMIT_EXCEEDED, headers={"Retry-After": "7"}),
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(200, json=page([])),
        ]
    )
    read("owners", connector(waits))
    assert waits[0] == 7.0 and len(waits) == 2


def test_truncated_page_is_fetched_again(mock: respx.MockRouter, waits: Waits) -> None:
    good = json.dumps(page([opportunity()]))
    route = mock.get(QUERY_ALL).mock(
        side_effect=[httpx.Response(200, text=good[:40]), httpx.Response(200, text=good)]
    )
    (result,) = read("deals", connector(waits))
    assert len(result.records) == 1 and route.call_count == 2


def test_daily_budget_only_slows_down_when_nearly_spent(
    mock: respx.MockRouter, waits: Waits
) -> None:
    mock.get(QUERY_ALL).mock(
        side_effect=[
            httpx.Response(
                200,
                json=page([], "/services/data/v60.0/query/01gX-1"),
                headers={"Sforce-Limit-Info": "api-usage=10018/100000"},
            ),
        ]
    )
    mock.get(f"{BASE}/services/data/v60.0/query/01gX-1").respond(
        json=page([]), headers={"Sforce-Limit-Info": "api-usage=96000/100000; api-bursts=1/750"}
    )
    read("owners", connector(waits))
    # 4,000 calls left of a rolling 24-hour budget: one call per 21.6 s.
    assert len(waits) == 1 and waits[0] == pytest.approx(21.6)


def test_a_nearly_spent_budget_pauses_instead_of_sleeping_for_hours(
    mock: respx.MockRouter, waits: Waits
) -> None:
    """1,000 calls left would mean one call every 86 s (one left: a day): the read stops with
    BudgetPaused, for the schedule to resume, and nothing sleeps."""
    mock.get(QUERY_ALL).respond(
        json=page([]), headers={"Sforce-Limit-Info": "api-usage=99000/100000"}
    )
    with pytest.raises(BudgetPaused, match=r"paused: daily API budget \(1000 of 100000"):
        read("owners", connector(waits))
    assert waits == []


def test_error_arrays() -> None:
    assert error_codes(json.dumps(fixture("expired_session_response.json"))) == [
        "INVALID_SESSION_ID"
    ]
    assert error_codes(json.dumps(fixture("query_error_response.json"))) == ["INVALID_FIELD"]
    assert error_codes(json.dumps(LIMIT_EXCEEDED * 2)) == ["REQUEST_LIMIT_EXCEEDED"] * 2
    assert error_codes(json.dumps(fixture("refresh_error_response.json"))) == []
    assert error_codes("<html>oops</html>") == []


def test_malformed_query_is_an_error_with_its_body(mock: respx.MockRouter, waits: Waits) -> None:
    body = [{"message": "unexpected token: FROM", "errorCode": "MALFORMED_QUERY"}]
    mock.get(QUERY_ALL).respond(400, json=body)
    with pytest.raises(CrmError) as caught:
        read("owners", connector(waits))
    assert error_codes(caught.value.body) == ["MALFORMED_QUERY"] and not waits


def test_merge_waits_for_an_empty_batch_to_be_followed(
    mock: respx.MockRouter, waits: Waits
) -> None:
    def task(n: int, stamp: str) -> dict[str, Any]:
        return sobject(
            "Task", f"00T{n:015d}", stamp, OwnerId="005A", CreatedDate=stamp, TaskSubtype="Call"
        )

    event = sobject(
        "Event", "00U000000000000001", "2024-01-05T00:00:00.000+0000", OwnerId="005A",
        StartDateTime="2024-01-05T09:00:00.000+0000",
    )  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        if "FROM Task" in q_of(request):
            # An empty batch that is not the last: the next one holds an older task.
            return httpx.Response(200, json=page([], "/services/data/v60.0/query/01gT-0"))
        return httpx.Response(200, json=page([event]))

    mock.get(QUERY_ALL).mock(side_effect=answer)
    mock.get(f"{BASE}/services/data/v60.0/query/01gT-0").respond(
        json=page(
            [task(1, "2024-01-02T00:00:00.000+0000"), task(2, "2024-01-09T00:00:00.000+0000")]
        )
    )
    pages = read("activities", connector(waits))
    ids = [r["external_id"][:3] for p in pages for r in p.records]
    assert ids == ["00T", "00U", "00T"]
    cursors = [p.cursor for p in pages if p.cursor]
    assert cursors == sorted(cursors)


def test_a_full_chunk_continues_after_its_last_record(mock: respx.MockRouter, waits: Waits) -> None:
    """A chunk that came back full (``query_chunk`` records) is followed by a query that
    starts after its last (SystemModstamp, Id); one that repeats it is an error, never a loop."""
    stamp = "2024-03-01T10:00:00.000+0000"
    full = [opportunity(f"0065g00000A{i:07d}", SystemModstamp=stamp) for i in range(200)]
    rest = [opportunity("0065g00000B0000001", SystemModstamp="2024-03-02T00:00:00.000+0000")]
    route = mock.get(QUERY_ALL).mock(
        side_effect=[httpx.Response(200, json=page(full)), httpx.Response(200, json=page(rest))]
    )
    settings = {"query_chunk": 200, "multi_currency": False, "default_currency": "EUR"}
    pages = read("deals", connector(waits, **settings))
    assert sum(len(p.records) for p in pages) == 201
    second = q_of(route.calls[1].request)
    assert (
        "WHERE (SystemModstamp > 2024-03-01T10:00:00Z OR (SystemModstamp = 2024-03-01T10:00:00Z"
        " AND Id > '0065g00000A0000199')) ORDER BY SystemModstamp ASC, Id ASC LIMIT 200"
    ) in second

    mock.get(QUERY_ALL).respond(json=page(full))  # a server that ignores the keyset
    with pytest.raises(CrmError, match="does not advance"):
        read("deals", connector(waits, **settings))
