"""HubSpot's search and archived listings, paged so that no record is ever skipped.

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

The search endpoint never returns archived (deleted) records: ``archived_pages`` lists
``GET /crm/v3/objects/{type}?archived=true`` (``connectors/hubspot.py`` yields them first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Page, RecordError, iso, parse_datetime
from connectors.http import CrmClient, CrmError
from connectors.hubspot_records import MODIFIED, modified_at

OBJECT_ID = "hs_object_id"
# HubSpot's maximum page size of list endpoints (search: 200, the connector's setting).
LIST_LIMIT = 100
# Offsets from here on are refused; documented for readers, never reached (see module doc).
SEARCH_CAP = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


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


def results_of(payload: Any, what: str) -> tuple[list[Any], str | None]:
    """A page's ``results`` and its ``paging.next.after`` (None on the last page)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise CrmError(f"{what}: unexpected response", body=str(payload))
    paging = payload.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return payload["results"], (str(after) if after not in (None, "") else None)


def _filter(prop: str, operator: str, value: int | str) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


class Search:
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
        results, after = results_of(self.client.post_json(self.url, json=body), f"POST {self.url}")
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
        results, after = results_of(client.get_json(url, params=params), f"GET {url}")
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


def tagged(tag: int, items: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, int, Any]]:
    for stamp, raw in items:
        yield stamp, tag, raw


def merge(parts: list[Page]) -> Page:
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
