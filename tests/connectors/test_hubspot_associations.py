"""HubSpot associations against documented answers (respx): a deal's company as its account,
and activities re-associated to a deal without changing (re-read on incremental runs)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors import hubspot
from tests.connectors.hubspot_wire import (
    CALL_TO_DEAL,
    DEAL_TO_CALL,
    DEAL_TO_COMPANY,
    PRIMARY,
    associations_answer,
    batch_read_answer,
    company,
    to,
)
from tests.connectors.test_hubspot import (
    EMPTY,
    T0,
    FakeSearch,
    activity,
    connector,
    deal,
    read,
    records,
    router,
)

__all__ = ["router"]  # the fixture, shared with test_hubspot.py

SINCE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # T0


def bodies_of(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


def input_ids(route: respx.Route) -> list[list[str]]:
    return [[i["id"] for i in body["inputs"]] for body in bodies_of(route)]


# ------------------------------------------------------------------ the deal's company


def _companies(router: respx.MockRouter, names: dict[str, str | None]) -> respx.Route:
    known = {i: company(i, n) for i, n in names.items()}
    return router.post("/crm/v3/objects/companies/batch/read").mock(
        side_effect=lambda request: batch_read_answer(request, known)
    )


def test_search_deals_are_named_after_their_primary_company(router: respx.MockRouter) -> None:
    """One association read per search page; the primary company (typeId 5) wins over one
    listed before it; each company's name is read once per run; a deal without a company
    (207 error) or with a deleted one (207 error) has no account."""
    fake = FakeSearch([deal(i, T0 + i) for i in range(1, 5)], page_limit=2)
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)
    links = {
        "1": [to(501, DEAL_TO_COMPANY), to(502, PRIMARY, DEAL_TO_COMPANY)],
        "2": [to(501)],
        "4": [to(501), to(503)],  # 503 was deleted: batch read does not return it
    }
    assoc = router.routes["deal_companies"].mock(
        side_effect=lambda request: associations_answer(request, links)
    )
    names = _companies(router, {"501": "Acme <Corp>", "502": "Globex"})

    got = {r["external_id"]: r["account"] for r in records(read(connector(page_size=2), "deals"))}

    assert got == {"1": "Globex", "2": "Acme ‹Corp›", "3": None, "4": "Acme ‹Corp›"}
    # One association read per search query (a query starts at the previous one's last
    # timestamp, so the boundary deal is asked for again).
    assert len(assoc.calls) == len(fake.bodies) == 3
    assert input_ids(assoc)[0] == ["1", "2"]
    # 501 is read once for the run, 503 is asked for once though not found.
    assert input_ids(names) == [["501", "502"]]
    assert all(b["properties"] == ["name"] for b in bodies_of(names))


def test_a_deleted_company_is_asked_for_once(router: respx.MockRouter) -> None:
    fake = FakeSearch([deal(i, T0 + i) for i in range(1, 5)], page_limit=2)
    router.post("/crm/v3/objects/deals/search").mock(side_effect=fake)
    links = {"1": [to(503)], "3": [to(503), to(504, PRIMARY)]}
    router.routes["deal_companies"].mock(
        side_effect=lambda request: associations_answer(request, links)
    )
    names = _companies(router, {"504": "Initech"})

    got = {r["external_id"]: r["account"] for r in records(read(connector(page_size=2), "deals"))}

    assert got == {"1": None, "2": None, "3": "Initech", "4": None}
    assert input_ids(names) == [["503"], ["504"]]


def test_company_reads_stay_within_hubspots_batch_limits(router: respx.MockRouter) -> None:
    """200 deals of 150 companies on one search page: one association read (at most 1,000
    inputs), companies in reads of at most 100."""
    router.post("/crm/v3/objects/deals/search").mock(
        side_effect=FakeSearch([deal(i, T0 + i) for i in range(1, 201)])
    )
    links = {str(i): [to(1000 + i % 150)] for i in range(1, 201)}
    assoc = router.routes["deal_companies"].mock(
        side_effect=lambda request: associations_answer(request, links)
    )
    names = _companies(router, {str(1000 + c): f"Company {c}" for c in range(150)})

    got = records(read(connector(), "deals"))

    assert {r["account"] for r in got} == {f"Company {c}" for c in range(150)}
    assert [len(ids) for ids in input_ids(assoc)] == [200]
    assert [len(ids) for ids in input_ids(names)] == [100, 50]


def test_association_pages_of_one_deal_are_followed(router: respx.MockRouter) -> None:
    """v4 pages each input's associations on its own (``paging.next.after`` per result)."""
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": [deal(1, T0)]})
    )
    links = {"1": [to(501), to(502), to(503, PRIMARY, DEAL_TO_COMPANY)]}
    assoc = router.routes["deal_companies"].mock(
        side_effect=lambda request: associations_answer(request, links, per_id=2)
    )
    _companies(router, {"501": "A", "502": "B", "503": "C"})

    (got,) = records(read(connector(), "deals"))

    assert got["account"] == "C"
    assert [b["inputs"] for b in bodies_of(assoc)] == [[{"id": "1"}], [{"id": "1", "after": "2"}]]


def test_archived_deals_carry_their_company_inline(router: respx.MockRouter) -> None:
    inline = {
        "companies": {
            "results": [
                {"id": "602", "type": "deal_to_company_unlabeled"},
                {"id": "601", "type": "deal_to_company"},
                {"id": "601", "type": "deal_to_company_unlabeled"},
            ]
        }
    }
    gone = deal(101, T0) | {
        "archived": True,
        "archivedAt": "2026-03-01T12:00:00.000Z",
        "associations": inline,
    }
    listing = router.get("/crm/v3/objects/deals").mock(
        return_value=httpx.Response(200, json={"results": [gone]})
    )
    router.post("/crm/v3/objects/deals/search").mock(return_value=httpx.Response(200, json=EMPTY))
    _companies(router, {"601": "Umbrella", "602": "Hooli"})

    (got,) = records(read(connector(), "deals"))

    assert (got["external_id"], got["is_deleted"], got["account"]) == ("101", True, "Umbrella")
    query = parse_qs(listing.calls[0].request.url.query.decode())
    assert query["associations"] == ["companies"]
    assert not router.routes["deal_companies"].called  # inline: no association read


def test_deal_companies_can_be_turned_off(router: respx.MockRouter) -> None:
    router.post("/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json={"results": [deal(1, T0)]})
    )
    names = _companies(router, {})

    (got,) = records(read(connector(deal_companies="false"), "deals"))

    assert got["account"] is None
    assert not router.routes["deal_companies"].called and not names.called
    listing = router.routes[2]  # GET /crm/v3/objects/deals (archived)
    assert "associations" not in parse_qs(listing.calls[0].request.url.query.decode())


# ------------------------------------------------------------------ association changes


def _activities(router: respx.MockRouter) -> dict[str, respx.Route]:
    """Deals 7 and 8 changed; call 11 changed (deal 7); calls 12 (deal 7) and 13 (deal 8)
    were associated to them without changing; 14 (deal 8) was deleted since."""
    router.post("/crm/v3/objects/deals/search").mock(
        side_effect=FakeSearch([deal(7, T0 + 1), deal(8, T0 + 2)])
    )
    router.post("/crm/v3/objects/calls/search").mock(
        side_effect=FakeSearch([activity("calls", 11, T0 + 5)])
    )
    router.post("/crm/v3/objects/emails/search").mock(side_effect=FakeSearch([]))
    router.get(path__regex=r"^/crm/v3/objects/(calls|emails)$").mock(
        return_value=httpx.Response(200, json=EMPTY)
    )
    to_deals = {"11": [to(7, CALL_TO_DEAL)], "12": [to(7, CALL_TO_DEAL)], "13": [to(8)]}
    of_deals = {"7": [to(11, DEAL_TO_CALL), to(12, DEAL_TO_CALL)], "8": [to(13), to(14)]}
    old = {str(i): activity("calls", i, T0 - 86_400_000) for i in (12, 13)}
    return {
        "call_deals": router.post("/crm/v4/associations/calls/deals/batch/read").mock(
            side_effect=lambda request: associations_answer(request, to_deals)
        ),
        "deal_calls": router.post("/crm/v4/associations/deals/calls/batch/read").mock(
            side_effect=lambda request: associations_answer(request, of_deals)
        ),
        "deal_emails": router.post("/crm/v4/associations/deals/emails/batch/read").mock(
            side_effect=lambda request: associations_answer(request, {})
        ),
        "calls": router.post("/crm/v3/objects/calls/batch/read").mock(
            side_effect=lambda request: batch_read_answer(request, old)
        ),
        "others": router.post(path__regex=r"^/crm/v\d/\w+/(deals/)?(meetings|tasks)").mock(
            return_value=httpx.Response(500)
        ),
    }


def test_activities_associated_to_changed_deals_are_read_again(
    router: respx.MockRouter,
) -> None:
    routes = _activities(router)
    conn = connector(activity_types=["calls", "emails"])

    read(conn, "deals", SINCE)
    pages = read(conn, "activities", SINCE)

    assert [r["external_id"] for r in pages[0].records] == ["11"]
    *_, again = pages
    # Found by their deal, not by a change: no cursor, so the stream's cursor stays put.
    assert again.cursor is None and again.fetched == 2
    assert {r["external_id"]: r["deal_external_id"] for r in again.records} == {
        "12": "7",
        "13": "8",
    }
    assert input_ids(routes["deal_calls"]) == [["7", "8"]]
    assert input_ids(routes["deal_emails"]) == [["7", "8"]]
    # Only what the search did not return, with the search's properties; 14 is gone.
    (body,) = bodies_of(routes["calls"])
    assert [i["id"] for i in body["inputs"]] == ["12", "13", "14"]
    assert set(body["properties"]) == {*hubspot.ACTIVITY_PROPERTIES, "hs_call_title"}
    assert input_ids(routes["call_deals"])[-1] == ["12", "13"]
    assert not routes["others"].called  # only the configured activity types


def test_a_first_sync_reads_no_association_changes(router: respx.MockRouter) -> None:
    routes = _activities(router)
    conn = connector(activity_types=["calls", "emails"])

    read(conn, "deals")
    pages = read(conn, "activities")

    assert [r["external_id"] for r in records(pages)] == ["11"]
    assert not routes["deal_calls"].called and not routes["calls"].called


def test_without_activity_deals_no_association_changes(router: respx.MockRouter) -> None:
    routes = _activities(router)
    conn = connector(activity_types=["calls", "emails"], activity_deals=False)

    read(conn, "deals", SINCE)
    pages = read(conn, "activities", SINCE)

    assert [r["deal_external_id"] for r in records(pages)] == [None]
    assert not routes["deal_calls"].called and not routes["call_deals"].called


def test_changed_deals_remembered_are_bounded(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    routes = _activities(router)
    monkeypatch.setattr(hubspot, "MAX_CHANGED_DEALS", 1)
    conn = connector(activity_types=["calls", "emails"])

    with caplog.at_level(logging.INFO, logger="connectors.hubspot"):
        read(conn, "deals", SINCE)
        read(conn, "activities", SINCE)

    assert input_ids(routes["deal_calls"]) == [["7"]]
    assert "periodic reconciliation" in caplog.text
