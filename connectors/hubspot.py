"""HubSpot CRM v3: owners, deals and the four activity objects (calls, emails, meetings, tasks).

Deals and activities are read through ``POST /crm/v3/objects/{type}/search`` filtered on
``hs_lastmodifieddate >= since`` and sorted by it, ascending. Two things about that endpoint
decide how this module pages:

* ``after`` is an offset into the result set. A record edited while we page moves to the end
  of the sort order, every later record shifts down one place, and the record at the page
  boundary is skipped: not just for this run but for good, because its timestamp is below the
  cursor we end on. Offsets are also capped: asking for ``after >= 10,000`` is an HTTP 400.
* So every page is a fresh query from the highest ``hs_lastmodifieddate`` seen so far (GTE,
  keyset paging) and ``after`` is never sent: no record can be skipped and no query ever gets
  near the 10,000 cap. Records sharing the boundary timestamp come back once more and are
  dropped by id; when a whole page shares one timestamp the query cannot advance, and that
  timestamp's records are read by ``hs_object_id`` instead (keyset on the id).

The search endpoint never returns archived (deleted) records. Each deals/activities run first
lists ``GET /crm/v3/objects/{type}?archived=true`` and yields the ones archived at/after
``since`` with ``is_deleted=True``. They come first, on pages without a cursor, so a run that
stops half-way cannot have stored a cursor beyond deletions it never reported.

Activities walk four object types in one stream; their searches are merged by
``hs_lastmodifieddate`` so every page cursor is a safe resume point for all four. Search cannot
return associations, so each search page of activities costs one more request
(``POST /crm/v4/associations/{type}/deals/batch/read``) for the activities' deals; archived
lists return them inline (``associations=deals``).

Search answers carry no rate-limit headers and HubSpot allows about five searches per second
per account, so against ``api.hubapi.com`` searches are spaced ``search_interval`` apart.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from connectors import http
from connectors.base import (
    Connector,
    Page,
    RecordError,
    Stream,
    currency_code,
    iso,
    map_page,
    parse_bool,
    parse_datetime,
)
from connectors.http import CrmClient, CrmError, Limits
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
    modified_at,
    no_cursor,
    parse_pipelines,
    safe_modified,
)

log = logging.getLogger(__name__)

KIND = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"
ACCOUNT_PATH = "/account-info/v3/details"

OBJECT_ID = "hs_object_id"
# HubSpot's maximum page sizes: search 200, list endpoints 100.
SEARCH_LIMIT = 200
LIST_LIMIT = 100
# Offsets from here on are refused; documented for readers, never reached (see module doc).
SEARCH_CAP = 10_000
# HubSpot allows about 5 searches per second per account: stay a little under it.
SEARCH_INTERVAL = 0.22
# v4 association batch reads take up to 1,000 ids; a search page has at most 200.
ASSOCIATION_BATCH = 1_000

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


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


def to_ms(value: datetime) -> int:
    """Epoch milliseconds, floored: a GTE filter on it still includes ``value`` itself."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MS


def _stamp_ms(raw: Any) -> int | None:
    try:
        stamp = modified_at(raw)
    except RecordError:
        return None
    return to_ms(stamp) if stamp is not None else None


def _results(payload: Any, what: str) -> tuple[list[Any], str | None]:
    """A page's ``results`` and its ``paging.next.after`` (None on the last page)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise CrmError(f"{what}: unexpected response", body=str(payload))
    paging = payload.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return payload["results"], (str(after) if after not in (None, "") else None)


def _filter(prop: str, operator: str, value: int | str) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


class _Search:
    """One object type's search results, oldest change first, each record once."""

    def __init__(
        self,
        client: CrmClient,
        object_type: str,
        properties: Iterable[str],
        limit: int,
        enrich: Callable[[list[Any]], None] | None = None,
        pace: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.url = f"/crm/v3/objects/{object_type}/search"
        self.properties = list(properties)
        self.limit = limit
        self.enrich = enrich
        self.pace = pace

    def _query(self, filters: list[dict[str, str]], sort: str) -> tuple[list[Any], bool]:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": self.limit,
        }
        if self.pace is not None:
            self.pace()
        results, after = _results(self.client.post_json(self.url, json=body), f"POST {self.url}")
        if self.enrich is not None and results:
            self.enrich(results)
        return results, after is not None

    def records(self, since: datetime | None) -> Iterator[tuple[int, Any]]:
        """``(hs_lastmodifieddate in ms, raw record)`` in ascending order from ``since``."""
        lower = to_ms(since) if since is not None else None
        seen: set[str] = set()  # ids already yielded whose stamp equals ``lower``
        while True:
            filters = [] if lower is None else [_filter(MODIFIED, "GTE", lower)]
            results, more = self._query(filters, MODIFIED)
            top, at_top = lower, set(seen)
            for raw in results:
                stamp = _stamp_ms(raw)
                ident = str(raw.get("id")) if isinstance(raw, dict) else ""
                if stamp is not None and stamp == lower and ident in seen:
                    continue  # the boundary record(s) of the previous page
                # Unreadable stamps keep their place; the mapper rejects those records.
                yield (stamp if stamp is not None else (top or 0)), raw
                if stamp is None:
                    continue
                if top is None or stamp > top:
                    top, at_top = stamp, {ident}
                elif stamp == top:
                    at_top.add(ident)
            if not more:
                return
            if top is None:
                raise CrmError(f"POST {self.url}: a full page without {MODIFIED}: cannot page")
            if top == lower:
                # A whole page shares one timestamp: read the rest of it by id, then go on
                # strictly after it.
                yield from ((top, raw) for raw in self._same_stamp(top, at_top))
                lower, seen = top + 1, set()
            else:
                lower, seen = top, at_top

    def _same_stamp(self, stamp: int, exclude: set[str]) -> Iterator[Any]:
        last_id: int | None = None
        while True:
            filters = [_filter(MODIFIED, "GTE", stamp), _filter(MODIFIED, "LTE", stamp)]
            if last_id is not None:
                filters.append(_filter(OBJECT_ID, "GT", last_id))
            results, more = self._query(filters, OBJECT_ID)
            progressed = last_id
            for raw in results:
                ident = str(raw.get("id")) if isinstance(raw, dict) else ""
                if ident.isdigit():
                    progressed = max(progressed or 0, int(ident))
                if ident not in exclude:
                    yield raw
            if not more:
                return
            if progressed == last_id:
                raise CrmError(f"POST {self.url}: ids do not advance: cannot page")
            last_id = progressed


def attach_deals(client: CrmClient, object_type: str, raws: list[Any]) -> None:
    """Add ``associations.deals`` to search results, in the shape list endpoints return it.

    Search cannot return associations; one v4 batch read per search page can.
    """
    ids = [str(r["id"]) for r in raws if isinstance(r, dict) and r.get("id") is not None]
    url = f"/crm/v4/associations/{object_type}/deals/batch/read"
    links: dict[str, list[dict[str, str]]] = {}
    for start in range(0, len(ids), ASSOCIATION_BATCH):
        inputs = [{"id": i} for i in ids[start : start + ASSOCIATION_BATCH]]
        payload = client.post_json(url, json={"inputs": inputs})
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise CrmError(f"POST {url}: unexpected response", body=str(payload))
        for item in results:
            source = item.get("from") if isinstance(item, dict) else None
            targets = item.get("to") if isinstance(item, dict) else None
            if not isinstance(source, dict) or not isinstance(targets, list):
                continue
            links[str(source.get("id"))] = [
                {"id": str(t["toObjectId"]), "type": f"{ACTIVITY_OBJECTS[object_type]}_to_deal"}
                for t in targets
                if isinstance(t, dict) and t.get("toObjectId") is not None
            ]
    for raw in raws:
        if isinstance(raw, dict) and "associations" not in raw:
            raw["associations"] = {"deals": {"results": links.get(str(raw.get("id")), [])}}


def archived_pages(
    client: CrmClient,
    object_type: str,
    properties: Iterable[str],
    since: datetime | None,
    associations: str | None = None,
) -> Iterator[list[Any]]:
    """Archived records (archived at/after ``since`` when ``archivedAt`` says so)."""
    url = f"/crm/v3/objects/{object_type}"
    params: dict[str, Any] = {
        "archived": "true",
        "limit": LIST_LIMIT,
        "properties": ",".join(properties),
    }
    if associations:
        # List endpoints return associations inline; no extra request.
        params["associations"] = associations
    while True:
        results, after = _results(client.get_json(url, params=params), f"GET {url}")
        kept = [r for r in results if since is None or _archived_since(r, since)]
        if kept:
            yield kept
        if after is None:
            return
        params["after"] = after


def _archived_since(raw: Any, since: datetime) -> bool:
    if not isinstance(raw, dict):
        return True  # let the mapper reject it
    try:
        archived = parse_datetime(raw.get("archivedAt"), "archivedAt")
    except RecordError:
        return True
    return archived is None or archived >= since


def _tagged(tag: int, items: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, int, Any]]:
    for stamp, raw in items:
        yield stamp, tag, raw


def _merge(parts: list[Page]) -> Page:
    page = Page()
    cursors: list[datetime] = []
    for part in parts:
        page.records.extend(part.records)
        page.rejects.extend(part.rejects)
        page.fetched += part.fetched
        # Compared as times: "…:40Z" sorts after "…:40.166000Z" as text.
        stamp = parse_datetime(part.cursor, "cursor")
        if stamp is not None:
            cursors.append(stamp)
    page.cursor = iso(max(cursors)) if cursors else None
    return page


# ------------------------------------------------------------------ connector


class HubSpotConnector(Connector):
    """Config: ``timezone`` (an IANA name: the day a ``closedate`` falls on; the portal's),
    ``default_currency`` (deals without ``deal_currency_code``; the portal's company
    currency), ``page_size`` (search page size, at most 200), ``activity_types`` (a subset of
    calls, emails, meetings, tasks), ``activity_deals`` (look up each activity's deal; True),
    ``search_interval`` (seconds between searches; 0.2 against api.hubapi.com, else 0)."""

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
        self._stages: dict[tuple[str, str], StageInfo] | None = None
        interval = self.config.get("search_interval")
        if interval is None:
            # The public API's search limit (~5/s per account, shared by all apps of the
            # portal); a sandbox or proxy has its own rules.
            interval = SEARCH_INTERVAL if client.base_url == DEFAULT_BASE_URL else 0.0
        self.search_interval = max(0.0, float(interval))
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
        current = deal_mapper(self.stages(), currency, zone)
        refreshed = False

        def mapper(raw: dict[str, Any]) -> dict[str, Any]:
            nonlocal current, refreshed
            try:
                return current(raw)
            except UnknownStage:
                if refreshed:
                    raise
                refreshed = True
                current = deal_mapper(self.stages(refresh=True), currency, zone)
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
            _tagged(
                i,
                _Search(
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
        if object_type not in ACTIVITY_OBJECTS or not self.activity_deals:
            return None
        return lambda raws: attach_deals(self.client, object_type, raws)

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
        return _merge(parts)

    def deleted_pages(
        self,
        object_type: str,
        properties: tuple[str, ...],
        mapper: Callable[[dict[str, Any]], dict[str, Any]],
        since: datetime | None,
    ) -> Iterator[Page]:
        linked = object_type in ACTIVITY_OBJECTS and self.activity_deals
        associations = "deals" if linked else None
        for raws in archived_pages(self.client, object_type, properties, since, associations):
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
                results, after = _results(payload, "GET /crm/v3/owners")
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
        mapper = self.connector.deal_mapper()
        yield from self.connector.deleted_pages("deals", DEAL_PROPERTIES, mapper, since)
        yield from self.connector.search_pages(
            ["deals"], {"deals": DEAL_PROPERTIES}, {"deals": mapper}, since
        )


class ActivitiesStream(_HubSpotStream):
    name = "activities"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        types = list(self.connector.activity_types)
        properties = {t: (*ACTIVITY_PROPERTIES, SUBJECT_PROPERTY[t]) for t in types}
        mappers = {t: activity_mapper(t) for t in types}
        for t in types:
            yield from self.connector.deleted_pages(t, properties[t], mappers[t], since)
        yield from self.connector.search_pages(types, properties, mappers, since)
