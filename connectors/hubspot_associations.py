"""HubSpot associations and batch reads: an activity's deal, a deal's company, and the
activities whose deal changed without them changing.

Search cannot return associations, so they are read in batches per page:

* ``POST /crm/v4/associations/{from}/{to}/batch/read`` takes up to 1,000 ids (HubSpot's limit
  since February 2025) and answers **207 Multi-Status** when some of them have no associations:
  ``results`` for the others plus ``errors`` (``OBJECT_NOT_FOUND`` /
  ``crm.associations.NO_ASSOCIATIONS_FOUND``, the ids in ``context.fromObjectId``). That is a
  success, not a failure. Each result's ``to`` list is paged on its own
  (``paging.next.after`` per id), asked for again with ``{"id", "after"}`` inputs.
* ``POST /crm/v3/objects/{type}/batch/read`` takes up to 100 ids and also answers 207 when some
  are missing (deleted, merged).

Associations end up on the raw records in the shape list endpoints return inline
(``associations.{deals|companies}.results[] = {id, type}``), so the mappers read one shape
whatever the endpoint.

**Deal → company.** A deal's account is the name of its company: the one associated with
HubSpot's primary label (typeId 5, ``HUBSPOT_DEFINED``; ``deal_to_company`` inline), else the
first. Names are read once per connector run (:class:`CompanyNames`).

**Association changes** (:func:`reassociated_pages`). Associating an activity to another deal
changes neither the activity's ``hs_lastmodifieddate`` nor reliably the deal's, so the
incremental search does not see it. The typical case does touch the deal: a rep logs a call,
then creates a deal and associates the call to it. So an incremental run reads the activities
associated with the deals it read as changed and re-reads those it has not already emitted.
Unchanged ones are identical records, which the engine does not write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from connectors.base import Page, clean_text, map_page, record_id
from connectors.http import CrmClient, CrmError
from connectors.hubspot_records import ACTIVITY_OBJECTS, id_of, no_cursor

log = logging.getLogger(__name__)

# HubSpot's documented input limits: v4 association batch reads 1,000, object batch reads 100.
ASSOCIATION_BATCH = 1_000
OBJECT_BATCH = 100
# HubSpot's primary deal-to-company association (the "Primary" label).
PRIMARY_COMPANY_TYPE_ID = 5
# Errors a batch read answers for inputs that simply have nothing to return.
_EMPTY_CATEGORIES = {"OBJECT_NOT_FOUND", "NO_ASSOCIATIONS_FOUND"}

# from id -> [(to id, association types)], in the order HubSpot lists them.
Links = dict[str, list[tuple[str, list[dict[str, Any]]]]]


def _batch_results(payload: Any, what: str) -> list[Any]:
    """A batch answer's ``results`` (200 or 207); unexpected ``errors`` are logged."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise CrmError(f"{what}: unexpected response", body=str(payload))
    errors = payload.get("errors")
    for error in errors if isinstance(errors, list) else []:
        category = str(error.get("category", "")) if isinstance(error, dict) else ""
        sub = str(error.get("subCategory", "")) if isinstance(error, dict) else ""
        if category not in _EMPTY_CATEGORIES and not sub.endswith("NO_ASSOCIATIONS_FOUND"):
            # Not fatal: the inputs it names are left without associations or records.
            log.warning("HubSpot: %s: %s", what, str(error)[:300])
    return results


def read_associations(client: CrmClient, from_type: str, to_type: str, ids: Iterable[str]) -> Links:
    """Every ``to_type`` associated with each of ``ids``; ids without any are left out."""
    url = f"/crm/v4/associations/{from_type}/{to_type}/batch/read"
    links: Links = {}
    pending: list[dict[str, str]] = [{"id": i} for i in dict.fromkeys(ids)]
    while pending:
        more: list[dict[str, str]] = []
        for start in range(0, len(pending), ASSOCIATION_BATCH):
            payload = client.post_json(
                url, json={"inputs": pending[start : start + ASSOCIATION_BATCH]}
            )
            for item in _batch_results(payload, f"POST {url}"):
                source = item.get("from") if isinstance(item, dict) else None
                targets = item.get("to") if isinstance(item, dict) else None
                if not isinstance(source, dict) or not isinstance(targets, list):
                    continue
                ident = str(source.get("id"))
                links.setdefault(ident, []).extend(
                    (str(t["toObjectId"]), _types(t))
                    for t in targets
                    if isinstance(t, dict) and t.get("toObjectId") is not None
                )
                after = _next_after(item)
                if after is not None:
                    more.append({"id": ident, "after": after})
        pending = more
    return links


def _types(target: dict[str, Any]) -> list[dict[str, Any]]:
    types = target.get("associationTypes")
    return [t for t in types if isinstance(t, dict)] if isinstance(types, list) else []


def _next_after(item: dict[str, Any]) -> str | None:
    paging = item.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


def _ids(raws: Iterable[Any]) -> list[str]:
    return [str(r["id"]) for r in raws if isinstance(r, dict) and r.get("id") is not None]


def attach_deals(client: CrmClient, object_type: str, raws: list[Any]) -> None:
    """Add ``associations.deals`` to activities read by search or batch read (one v4 batch
    read per page), in the shape list endpoints return it."""
    links = read_associations(client, object_type, "deals", _ids(raws))
    kind = f"{ACTIVITY_OBJECTS[object_type]}_to_deal"
    for raw in raws:
        if isinstance(raw, dict) and "associations" not in raw:
            found = links.get(str(raw.get("id")), [])
            raw["associations"] = {
                "deals": {"results": [{"id": d, "type": kind} for d, _ in found]}
            }


def _is_primary(types: list[dict[str, Any]]) -> bool:
    return any(
        t.get("typeId") == PRIMARY_COMPANY_TYPE_ID and t.get("category") == "HUBSPOT_DEFINED"
        for t in types
    )


def attach_companies(client: CrmClient, raws: list[Any]) -> None:
    """Add ``associations.companies`` to deals read by search: the primary company typed
    ``deal_to_company`` as list endpoints type it, the others ``deal_to_company_unlabeled``."""
    links = read_associations(client, "deals", "companies", _ids(raws))
    for raw in raws:
        if not isinstance(raw, dict):
            continue
        found = links.get(str(raw.get("id")), [])
        primary = "deal_to_company"
        results = [
            {"id": c, "type": primary if _is_primary(types) else f"{primary}_unlabeled"}
            for c, types in found
        ]
        associations = raw.setdefault("associations", {})
        if isinstance(associations, dict):
            associations["companies"] = {"results": results}


def company_of(raw: Any) -> str | None:
    """The deal's company id: the primary one (``deal_to_company``), else the first listed."""
    associations = raw.get("associations") if isinstance(raw, dict) else None
    companies = associations.get("companies") if isinstance(associations, dict) else None
    results = companies.get("results") if isinstance(companies, dict) else None
    listed = [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
    primary = [r for r in listed if r.get("type") == "deal_to_company"]
    for item in primary + listed:
        try:
            ident = record_id(item.get("id"), "associated company id")
        except ValueError:
            continue
        if ident is not None:
            return ident
    return None


def batch_read(
    client: CrmClient, object_type: str, ids: Sequence[str], properties: Iterable[str]
) -> Iterator[list[Any]]:
    """The records of ``ids`` (100 per call), a list per call; missing ones are left out."""
    url = f"/crm/v3/objects/{object_type}/batch/read"
    wanted = list(properties)
    for start in range(0, len(ids), OBJECT_BATCH):
        inputs = [{"id": i} for i in ids[start : start + OBJECT_BATCH]]
        payload = client.post_json(url, json={"properties": wanted, "inputs": inputs})
        yield _batch_results(payload, f"POST {url}")


class CompanyNames:
    """Company id -> name, read once per connector run (one deal page's new companies in one
    batch read per 100): a company has many deals."""

    def __init__(self, client: CrmClient) -> None:
        self.client = client
        # None: read, and deleted or nameless.
        self.names: dict[str, str | None] = {}

    def read(self, raws: Iterable[Any]) -> None:
        """Read the names of the deals' companies not read yet."""
        wanted = sorted({c for r in raws if (c := company_of(r)) and c not in self.names})
        for results in batch_read(self.client, "companies", wanted, ["name"]):
            for item in results:
                if isinstance(item, dict) and item.get("id") is not None:
                    props = item.get("properties")
                    name = props.get("name") if isinstance(props, dict) else None
                    self.names[str(item["id"])] = clean_text(name)
        for company in wanted:
            self.names.setdefault(company, None)  # not returned: deleted since; not asked again

    def account(self, raw: Any) -> str | None:
        company = company_of(raw)
        return self.names.get(company) if company else None


def reassociated_pages(
    client: CrmClient,
    deal_ids: Sequence[str],
    properties: Mapping[str, tuple[str, ...]],
    mappers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
    emitted: set[str],
) -> Iterator[Page]:
    """The activities associated with ``deal_ids`` that are not in ``emitted`` (the run's
    already read ones), read again with their deals, on pages without a cursor: they were
    found by their deal, not by a change of theirs, so they say nothing about how far the
    activity search got. ``properties``/``mappers`` are per activity type."""
    if not deal_ids:
        return
    for object_type, props in properties.items():
        links = read_associations(client, "deals", object_type, deal_ids)
        found = dict.fromkeys(a for targets in links.values() for a, _ in targets)
        stale = [a for a in found if a not in emitted]
        for raws in batch_read(client, object_type, stale, props):
            if not raws:
                continue
            attach_deals(client, object_type, raws)
            page = map_page(raws, mappers[object_type], id_of=id_of, cursor_of=no_cursor)
            emitted.update(r["external_id"] for r in page.records)
            yield page
