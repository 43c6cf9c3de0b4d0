"""HubSpot's batch answers as documented, for respx: v4 association batch reads and object
batch reads, both 207 Multi-Status with ``errors`` when some inputs have nothing to return."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

PRIMARY = {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}
DEAL_TO_COMPANY = {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None}
DEAL_TO_CALL = {"category": "HUBSPOT_DEFINED", "typeId": 205, "label": None}
CALL_TO_DEAL = {"category": "HUBSPOT_DEFINED", "typeId": 206, "label": None}
STAMPS = {
    "startedAt": "2026-03-02T09:00:00.100Z",
    "completedAt": "2026-03-02T09:00:00.130Z",
}


def to(ident: int | str, *types: dict[str, Any]) -> dict[str, Any]:
    """One ``to`` entry of a v4 association answer."""
    return {"toObjectId": int(ident), "associationTypes": list(types) or [DEAL_TO_COMPANY]}


def associations_answer(
    request: httpx.Request,
    links: Mapping[str, Sequence[dict[str, Any]]],
    *,
    per_id: int = 500,
    bodies: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    """``POST /crm/v4/associations/{from}/{to}/batch/read``: ``per_id`` associations per input
    and page (``paging.next.after`` per result); inputs without any are 207 errors."""
    body = json.loads(request.content)
    if bodies is not None:
        bodies.append(body)
    _, _, _, from_type, to_type, *_ = request.url.path.split("/")
    results, errors = [], []
    for item in body["inputs"]:
        ident, start = item["id"], int(item.get("after") or 0)
        targets = list(links.get(ident, ()))
        if not targets:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type[:-1]} is associated with {from_type[:-1]} {ident}.",
                    "context": {
                        "fromObjectId": [ident],
                        "fromObjectType": [from_type[:-1]],
                        "toObjectType": [to_type[:-1]],
                    },
                    "links": {},
                }
            )
            continue
        result: dict[str, Any] = {"from": {"id": ident}, "to": targets[start : start + per_id]}
        if start + per_id < len(targets):
            result["paging"] = {"next": {"after": str(start + per_id), "link": None}}
        results.append(result)
    payload: dict[str, Any] = {"status": "COMPLETE", "results": results, **STAMPS}
    if errors:
        payload |= {"numErrors": len(errors), "errors": errors}
    return httpx.Response(207 if errors else 200, json=payload)


def batch_read_answer(
    request: httpx.Request,
    records: Mapping[str, dict[str, Any]],
    bodies: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    """``POST /crm/v3/objects/{type}/batch/read``: the records asked for that exist; the
    others in one 207 ``OBJECT_NOT_FOUND`` error."""
    body = json.loads(request.content)
    if bodies is not None:
        bodies.append(body)
    asked = [i["id"] for i in body["inputs"]]
    found = [records[i] for i in asked if i in records]
    missing = [i for i in asked if i not in records]
    payload: dict[str, Any] = {"status": "COMPLETE", "results": found, **STAMPS}
    if missing:
        payload |= {
            "numErrors": 1,
            "errors": [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                    "links": {},
                }
            ],
        }
    return httpx.Response(207 if missing else 200, json=payload)


def company(ident: int | str, name: str | None) -> dict[str, Any]:
    """A company as batch read returns it with ``properties: ["name"]``."""
    return {
        "id": str(ident),
        "properties": {
            "name": name,
            "hs_object_id": str(ident),
            "createdate": "2025-01-10T10:00:00.000Z",
            "hs_lastmodifieddate": "2026-01-10T10:00:00.000Z",
        },
        "createdAt": "2025-01-10T10:00:00.000Z",
        "updatedAt": "2026-01-10T10:00:00.000Z",
        "archived": False,
    }
