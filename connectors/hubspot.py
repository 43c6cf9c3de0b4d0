"""HubSpot CRM v3: owners, deals and the four activity objects (calls, emails, meetings, tasks).

Deals and activities are read through ``POST /crm/v3/objects/{type}/search`` from the
highest ``hs_lastmodifieddate`` seen (keyset paging: ``connectors/hubspot_search.py`` says
why). The search endpoint never returns archived (deleted) records. Each deals/activities run
first lists ``GET /crm/v3/objects/{type}?archived=true`` and yields the ones archived at/after
``since`` with ``is_deleted=True``. They come first, on pages without a cursor, so a run that
stops half-way cannot have stored a cursor beyond deletions it never reported.

Activities walk four object types in one stream; their searches are merged by
``hs_lastmodifieddate`` so every page cursor is a safe resume point for all four. Search cannot
return associations, so each search page of activities costs one more request
(``POST /crm/v4/associations/{type}/deals/batch/read``) for the activities' deals; archived
lists return them inline (``associations=deals``). Likewise each search page of deals costs a
deal-to-company association read, and a companies batch read for the names not read yet in
this run (``deal_companies``); archived deals list theirs inline (``associations=companies``).

Re-associating an activity to another deal does not change the activity: on an incremental
run the deals stream remembers the deals it read, and after its searches the activities stream
re-reads those deals' activities it has not returned yet, on pages without a cursor
(``hubspot_associations`` says how and why).

Search answers carry no rate-limit headers and HubSpot allows about five searches per second
per account, so searches are spaced ``SEARCH_INTERVAL`` apart whatever the host (a proxy or a
regional host is still HubSpot behind it); the source setting ``search_interval`` (seconds, 0
turns it off: the sandbox) overrides it. Other answers are paced by their
``X-HubSpot-RateLimit-*`` headers (``limits_from_headers``).

Every property is a string or null (``"amount": "500"``); times are ISO-8601 or epoch-ms
strings. Deal stages are ids (``qualifiedtobuy``): the pipelines endpoint, read once per
connector, gives their labels, probabilities and whether they are closed.

The portal's time zone and currency (``GET /account-info/v3/details``: ``timeZone``,
``companyCurrency``), read once per connector unless the source's settings give them
(``timezone``, ``default_currency``). ``closedate`` is an instant, and HubSpot's own reports
put it in the period of its date in the portal's time zone: a deal won at 21:30 on 31 March in
California is a March (Q1) deal, though it is 1 April in UTC. A deal with no
``deal_currency_code`` is in the company currency, not in USD. A host without the account
API (a proxy that does not forward it: 404) leaves both at UTC and USD, with a warning.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from connectors import http
from connectors.base import (
    Connector,
    Page,
    Stream,
    currency_code,
    map_page,
    parse_bool,
    parse_datetime,
)
from connectors.http import CrmClient, CrmError, Limits
from connectors.hubspot_associations import (
    CompanyNames,
    attach_companies,
    attach_deals,
    reassociated_pages,
)
from connectors.hubspot_records import (
    ACTIVITY_OBJECTS,
    MODIFIED,
    SUBJECT_PROPERTY,
    StageInfo,
    UnknownStage,
    activity_mapper,
    deal_mapper,
    id_of,
    map_owner,
    no_cursor,
    parse_pipelines,
    safe_modified,
)
from connectors.hubspot_search import (
    LIST_LIMIT,
    Search,
    archived_pages,
    merge,
    results_of,
    tagged,
)

log = logging.getLogger(__name__)

KIND = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"
ACCOUNT_PATH = "/account-info/v3/details"

# HubSpot's maximum page sizes: search 200, list endpoints 100.
SEARCH_LIMIT = 200
# HubSpot allows about 5 searches per second per account: stay a little under it.
SEARCH_INTERVAL = 0.22
# Deals an incremental run remembers to re-read their activities' associations: a bound on
# memory and on the extra reads; the periodic reconciliation catches the rest.
MAX_CHANGED_DEALS = 50_000

DEAL_PROPERTIES = (
    "dealname",
    "amount",
    "dealstage",
    "pipeline",
    "closedate",
    "createdate",
    MODIFIED,
    "hubspot_owner_id",
    "hs_is_closed",
    "hs_is_closed_won",
    "deal_currency_code",
)
ACTIVITY_PROPERTIES = ("hs_timestamp", "hubspot_owner_id", MODIFIED, "hs_createdate")


# ------------------------------------------------------------------ client


def build_client(
    *,
    base_url: str | None,
    credentials: Mapping[str, Any],
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CrmClient:
    """A private-app token (``access_token``) or OAuth (``client_id``, ``client_secret``,
    ``refresh_token``[, ``access_token``]); OAuth wins when both are present."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return http.build_client(
        base,
        wire=WIRE,
        credentials=credentials,
        token_url=f"{base}/oauth/v1/token",
        on_refresh=on_refresh,
        transport=transport,
        sleep=sleep,
    )


def is_daily_limit(response: httpx.Response) -> bool:
    """A 429 for the DAILY policy lasts until midnight: fail the run, let the schedule retry."""
    if response.status_code != 429:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("policyName") == "DAILY"


def is_auth_error(response: httpx.Response) -> bool:
    """HubSpot answers every credential problem with 401 (``EXPIRED_AUTHENTICATION`` for an
    expired OAuth token, ``INVALID_AUTHENTICATION`` otherwise). 403 means a missing scope,
    which a refresh cannot fix."""
    return response.status_code == 401


def limits_from_headers(response: httpx.Response) -> Limits:
    """HubSpot's rolling window: ``X-HubSpot-RateLimit-Max`` calls per
    ``-Interval-Milliseconds``, ``-Remaining`` left; older answers carry only the
    ``-Secondly`` pair. Search answers carry none: then nothing is known."""
    headers = response.headers
    limit = _int(headers.get("X-HubSpot-RateLimit-Max"))
    remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
    interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
    if limit is None or remaining is None:
        limit = _int(headers.get("X-HubSpot-RateLimit-Secondly"))
        remaining = _int(headers.get("X-HubSpot-RateLimit-Secondly-Remaining"))
        interval = 1_000
    if limit is None or remaining is None or not interval:
        return Limits()
    return Limits(remaining=remaining, limit=limit, reset_seconds=interval / 1000)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


WIRE = http.CrmWire(
    needs="HubSpot needs a private-app access_token, or client_id, client_secret and refresh_token",
    limits=limits_from_headers,
    is_auth_error=is_auth_error,
    is_final=is_daily_limit,
)


# ------------------------------------------------------------------ paging


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Paris)") from exc


def _account(client: CrmClient) -> tuple[ZoneInfo, str]:
    """The portal's ``timeZone`` and ``companyCurrency`` (UTC and USD where the host has no
    account API, or the account does not say)."""
    try:
        details = client.get_json(ACCOUNT_PATH)
    except CrmError as exc:
        if exc.status != 404:
            raise
        log.warning("HubSpot: %s is not served here: dates in UTC, amounts in USD", ACCOUNT_PATH)
        return ZoneInfo("UTC"), "USD"
    details = details if isinstance(details, dict) else {}
    zone = details.get("timeZone")
    currency = details.get("companyCurrency")
    return (
        _zone(zone) if zone else ZoneInfo("UTC"),
        currency_code(currency) if currency else "USD",
    )


# ------------------------------------------------------------------ connector


class HubSpotConnector(Connector):
    """Config: ``timezone`` (an IANA name: the day a ``closedate`` falls on; the portal's),
    ``default_currency`` (deals without ``deal_currency_code``; the portal's company
    currency), ``page_size`` (search page size, at most 200), ``activity_types`` (a subset of
    calls, emails, meetings, tasks), ``activity_deals`` (look up each activity's deal, and
    follow association changes; True), ``deal_companies`` (name each deal's company as its
    account; True), ``search_interval`` (seconds between searches, whatever the host; 0
    turns pacing off; :data:`SEARCH_INTERVAL` by default)."""

    kind = KIND

    def __init__(self, client: CrmClient, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(client, config)
        currency = self.config.get("default_currency")
        self._currency = currency_code(currency) if currency else None
        self._zone = _zone(self.config["timezone"]) if self.config.get("timezone") else None
        self.page_size = max(1, min(SEARCH_LIMIT, int(self.config.get("page_size", SEARCH_LIMIT))))
        types = tuple(self.config.get("activity_types") or ACTIVITY_OBJECTS)
        unknown = [t for t in types if t not in ACTIVITY_OBJECTS]
        if unknown:
            raise ValueError(f"unknown HubSpot activity types: {', '.join(map(str, unknown))}")
        self.activity_types = types
        self.activity_deals = parse_bool(self.config.get("activity_deals", True))
        self.deal_companies = parse_bool(self.config.get("deal_companies", True))
        self.companies = CompanyNames(client)
        # Deals the running incremental sync read as changed (ActivitiesStream reads their
        # activities' associations); at most MAX_CHANGED_DEALS.
        self.changed_deals: dict[str, None] = {}
        self._changed_overflow = False
        self._stages: dict[tuple[str, str], StageInfo] | None = None
        interval = self.config.get("search_interval")
        # The search limit (~5/s per account, shared by all apps of the portal) holds behind a
        # proxy or a regional host too, so the host does not decide; only the setting can
        # (the sandbox sets 0).
        self.search_interval = max(0.0, float(SEARCH_INTERVAL if interval is None else interval))
        self._last_search = float("-inf")

    def streams(self) -> list[Stream]:
        return [OwnersStream(self), DealsStream(self), ActivitiesStream(self)]

    def portal(self) -> tuple[ZoneInfo, str]:
        """(time zone, currency) of the portal: the settings', else the account's (module
        docstring), read once per connector."""
        if self._zone is None or self._currency is None:
            zone, currency = _account(self.client)
            self._zone = self._zone or zone
            self._currency = self._currency or currency
        return self._zone, self._currency

    def stages(self, *, refresh: bool = False) -> dict[tuple[str, str], StageInfo]:
        """Deal stages, fetched once per connector (they rarely change during a sync), or
        again with ``refresh``."""
        if self._stages is None or refresh:
            self._stages = parse_pipelines(self.client.get_json("/crm/v3/pipelines/deals"))
        return self._stages

    def deal_mapper(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Deals in our shape. A stage the pipelines did not list when read (added since)
        makes them read once more before the deal is rejected: at most once per connector."""
        zone, currency = self.portal()
        account = self.companies.account if self.deal_companies else None
        current = deal_mapper(self.stages(), currency, zone, account)
        refreshed = False

        def mapper(raw: dict[str, Any]) -> dict[str, Any]:
            nonlocal current, refreshed
            try:
                return current(raw)
            except UnknownStage:
                if refreshed:
                    raise
                refreshed = True
                current = deal_mapper(self.stages(refresh=True), currency, zone, account)
                return current(raw)

        return mapper

    def search_pages(
        self,
        object_types: list[str],
        properties: Mapping[str, tuple[str, ...]],
        mappers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
        since: datetime | None,
    ) -> Iterator[Page]:
        """The types' searches merged by ``hs_lastmodifieddate``, ``page_size`` per page."""
        streams = [
            tagged(
                i,
                Search(
                    self.client,
                    t,
                    properties[t],
                    self.page_size,
                    self._enrich(t),
                    self._pace_search if self.search_interval else None,
                ).records(since),
            )
            for i, t in enumerate(object_types)
        ]
        batch: list[tuple[int, int, Any]] = []
        for item in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            batch.append(item)
            if len(batch) >= self.page_size:
                yield self._page(batch, object_types, mappers)
                batch = []
        if batch:
            yield self._page(batch, object_types, mappers)

    def _pace_search(self) -> None:
        wait = self._last_search + self.search_interval - time.monotonic()
        if wait > 0:
            self.client.sleep(wait)
        self._last_search = time.monotonic()

    def _enrich(self, object_type: str) -> Callable[[list[Any]], None] | None:
        """What a search page needs that search cannot return: an activity's deal, a deal's
        company (and its name)."""
        if object_type == "deals":
            return self._attach_companies if self.deal_companies else None
        if object_type not in ACTIVITY_OBJECTS or not self.activity_deals:
            return None
        return lambda raws: attach_deals(self.client, object_type, raws)

    def _attach_companies(self, raws: list[Any]) -> None:
        attach_companies(self.client, raws)
        self.companies.read(raws)

    def forget_changed(self) -> None:
        self.changed_deals, self._changed_overflow = {}, False

    def remember_changed(self, page: Page) -> None:
        """Remember the page's deals for :meth:`reassociated_pages`, up to the bound."""
        ids = [r["external_id"] for r in page.records]
        ids += [r.external_id for r in page.rejects if r.external_id]
        for ident in ids:
            if len(self.changed_deals) >= MAX_CHANGED_DEALS:
                if ident not in self.changed_deals and not self._changed_overflow:
                    self._changed_overflow = True
                    log.info(
                        "HubSpot: over %d changed deals: the activities of the others are not "
                        "re-read; the periodic reconciliation catches their association changes",
                        MAX_CHANGED_DEALS,
                    )
                continue
            self.changed_deals[ident] = None

    def reassociated_pages(
        self,
        properties: Mapping[str, tuple[str, ...]],
        mappers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
        emitted: set[str],
    ) -> Iterator[Page]:
        """Activities (re)associated with the deals this run read as changed, which the
        activity search did not return (hubspot_associations); once per run."""
        deals, self.changed_deals = list(self.changed_deals), {}
        yield from reassociated_pages(self.client, deals, properties, mappers, emitted)

    def _page(
        self,
        batch: list[tuple[int, int, Any]],
        object_types: list[str],
        mappers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
    ) -> Page:
        parts = []
        for i, object_type in enumerate(object_types):
            raws = [raw for _, j, raw in batch if j == i]
            if raws:
                mapper = mappers[object_type]
                parts.append(map_page(raws, mapper, id_of=id_of, cursor_of=safe_modified))
        return merge(parts)

    def deleted_pages(
        self,
        object_type: str,
        properties: tuple[str, ...],
        mapper: Callable[[dict[str, Any]], dict[str, Any]],
        since: datetime | None,
    ) -> Iterator[Page]:
        associations = None
        if object_type in ACTIVITY_OBJECTS and self.activity_deals:
            associations = "deals"
        elif object_type == "deals" and self.deal_companies:
            associations = "companies"
        for raws in archived_pages(self.client, object_type, properties, since, associations):
            if associations == "companies":
                self.companies.read(raws)
            # No cursor: archived lists are in id order, not in change order.
            page = map_page(raws, mapper, id_of=id_of, cursor_of=no_cursor)
            for record in page.records:
                record["is_deleted"] = True
            yield page


class _HubSpotStream(Stream):
    primary_key = "id"
    cursor_field = MODIFIED

    def __init__(self, connector: HubSpotConnector) -> None:
        self.connector = connector


class OwnersStream(_HubSpotStream):
    """All owners, every run: the owners API has no change filter, and a company has few."""

    name = "owners"
    cursor_field = "updatedAt"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        client = self.connector.client
        for archived in ("false", "true"):
            params: dict[str, Any] = {"limit": LIST_LIMIT, "archived": archived}
            while True:
                payload = client.get_json("/crm/v3/owners", params=params)
                results, after = results_of(payload, "GET /crm/v3/owners")
                if archived == "true":
                    # The listing decides: everything in it is archived (a deactivated user).
                    results = [
                        {**r, "archived": True} if isinstance(r, dict) else r for r in results
                    ]
                yield map_page(
                    results,
                    map_owner,
                    id_of=id_of,
                    cursor_of=lambda r: parse_datetime(r.get("updatedAt"), "updatedAt"),
                )
                if after is None:
                    break
                params["after"] = after


class DealsStream(_HubSpotStream):
    name = "deals"

    def remap(self, raws: list[dict[str, Any]]) -> Page:
        # The stage catalog is what changes: deal_mapper reads it again for an unknown stage.
        return map_page(raws, self.connector.deal_mapper(), id_of=id_of, cursor_of=no_cursor)

    def pages(self, since: datetime | None) -> Iterator[Page]:
        """Archived deals, then changed ones; on an incremental run the changed ones are
        remembered for the activities stream (association changes, module docstring)."""
        connector = self.connector
        connector.forget_changed()
        mapper = connector.deal_mapper()
        yield from connector.deleted_pages("deals", DEAL_PROPERTIES, mapper, since)
        for page in connector.search_pages(
            ["deals"], {"deals": DEAL_PROPERTIES}, {"deals": mapper}, since
        ):
            if since is not None and connector.activity_deals:
                connector.remember_changed(page)
            yield page


class ActivitiesStream(_HubSpotStream):
    name = "activities"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        types = list(self.connector.activity_types)
        properties = {t: (*ACTIVITY_PROPERTIES, SUBJECT_PROPERTY[t]) for t in types}
        mappers = {t: activity_mapper(t) for t in types}
        emitted: set[str] = set()
        pages = chain(
            *(self.connector.deleted_pages(t, properties[t], mappers[t], since) for t in types),
            self.connector.search_pages(types, properties, mappers, since),
        )
        for page in pages:
            if since is not None:
                emitted.update(r["external_id"] for r in page.records)
                emitted.update(r.external_id for r in page.rejects if r.external_id)
            yield page
        if since is not None and self.connector.activity_deals:
            # After the searches: what they returned is current and need not be read again.
            yield from self.connector.reassociated_pages(properties, mappers, emitted)
