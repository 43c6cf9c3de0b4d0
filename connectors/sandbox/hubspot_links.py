"""Sandbox HubSpot's associations and batch reads: activity ↔ deal, deal → company.

Companies are derived from the deals' ``account`` column: one company per account name, with
a stable numeric id (``company_id``: the same name always has the same id, whatever else the
data holds). Links are derived from the frames and cached per ``state.version``: a test that
moves an activity to another deal (``activities.deal_external_id``) or a deal to another
account bumps the version and the next answer follows.

``POST /crm/v4/associations/{from}/{to}/batch/read`` serves calls/emails/meetings/tasks →
deals, deals → those four, and deals → companies (the company with HubSpot's primary label,
typeId 5, and the unlabeled deal-to-company type 341). Like HubSpot, inputs without
associations make the answer a **207** with an ``errors`` entry each
(``OBJECT_NOT_FOUND``/``crm.associations.NO_ASSOCIATIONS_FOUND``). ``POST
/crm/v3/objects/{type}/batch/read`` serves deals, the four activity types and companies
(``name``), with a 207 ``OBJECT_NOT_FOUND`` error for ids that do not exist or are archived.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi.responses import JSONResponse, Response

from connectors.sandbox.common import utc_iso

if TYPE_CHECKING:
    from connectors.sandbox.hubspot_portal import Portal

Ints = npt.NDArray[np.int64]

# Above the deal ids (9e9 + n), below the activity ids (4e10 + n): a mix-up shows.
COMPANY_BASE = 10_000_000_000
ACTIVITY_TYPES = {"calls": "call", "emails": "email", "meetings": "meeting", "tasks": "task"}
# HubSpot's HUBSPOT_DEFINED association type ids.
TO_DEAL = {"calls": 206, "emails": 210, "meetings": 212, "tasks": 216}
FROM_DEAL = {"calls": 205, "emails": 209, "meetings": 211, "tasks": 215}
PRIMARY_COMPANY, DEAL_TO_COMPANY = 5, 341
BATCH_MAX, ASSOCIATIONS_MAX = 100, 1_000
_COMPANY_STAMP = "2024-01-01T00:00:00.000Z"


def wanted_properties(value: Any) -> set[str] | None:
    """The ``properties`` a request names (a list, or comma-separated), None for none."""
    if value is None or value == "" or value == []:
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    return {str(p).strip() for p in items if str(p).strip()}


def company_id(name: str) -> int:
    """The sandbox company id of an account name (stable: a CRC of the name)."""
    return COMPANY_BASE + zlib.crc32(name.encode())


@dataclass(frozen=True)
class Links:
    version: int
    # Per activity row: its deal's id, or -1.
    activity_deals: Ints
    # Per deal row: its company's id, or -1.
    deal_companies: Ints
    company_names: dict[int, str]


def derive(version: int, deals: pd.DataFrame, activities: pd.DataFrame, ids: Any) -> Links:
    """The links of the frames as they are now (``ids``: the portal's key -> id function)."""
    accounts = deals["account"].astype("string")
    companies = np.array(
        [company_id(a) if isinstance(a, str) and a.strip() else -1 for a in accounts.tolist()],
        dtype=np.int64,
    )
    names = {int(c): str(a) for c, a in zip(companies, accounts.tolist(), strict=True) if c >= 0}
    return Links(version, ids(activities["deal_external_id"]), companies, names)


def _error(status: int, message: str, category: str) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    return JSONResponse({**body, "category": category}, status_code=status)


def _inputs(body: Any, limit: int) -> list[str] | JSONResponse:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        return _error(400, "inputs must be a list", "VALIDATION_ERROR")
    if len(inputs) > limit:
        return _error(400, f"At most {limit} inputs per batch", "VALIDATION_ERROR")
    return [str(i.get("id")) if isinstance(i, dict) else str(i) for i in inputs]


def _numbers(wanted: list[str]) -> Ints:
    numbers = pd.to_numeric(pd.Series(wanted, dtype="string"), errors="coerce").fillna(-1)
    out: Ints = np.asarray(numbers, dtype=np.int64)
    return out


def _answer(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> JSONResponse:
    now = utc_iso(pd.Timestamp.now(tz="UTC"))
    payload: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    }
    if errors:
        payload |= {"numErrors": len(errors), "errors": errors}
    return JSONResponse(payload, status_code=207 if errors else 200)


def _plural(name: str) -> str:
    name = name.lower()
    return {"company": "companies"}.get(name, name if name.endswith("s") else f"{name}s")


def _targets(portal: Portal, from_type: str, to_type: str, ids: Ints) -> list[list[int]] | None:
    """Per input id, the associated ids (None: an association the sandbox does not serve)."""
    links = portal.links()
    if from_type in ACTIVITY_TYPES and to_type == "deals":
        return _one_each(portal, from_type, links.activity_deals, ids)
    if from_type == "deals" and to_type == "companies":
        return _one_each(portal, "deals", links.deal_companies, ids)
    if from_type == "deals" and to_type in ACTIVITY_TYPES:
        rows, table_ids, _ = portal.live_rows(to_type)
        deals = links.activity_deals[rows]
        keep = np.isin(deals, ids)
        grouped = pd.Series(table_ids[keep]).groupby(deals[keep]).agg(list)
        return [sorted(grouped[i]) if i in grouped.index else [] for i in ids]
    return None


def _one_each(portal: Portal, object_type: str, linked: Ints, ids: Ints) -> list[list[int]]:
    """Per id, its one linked id (``linked``: per row of the type's frame) or none."""
    # The live rows cached until the records change: filtering the whole frame per request
    # made the sandbox, not the client, the bottleneck of a benchmark.
    rows, table_ids, _ = portal.live_rows(object_type)
    if table_ids.size == 0:
        return [[] for _ in ids]
    positions = pd.Index(table_ids).get_indexer(pd.Index(ids))
    found = np.where(positions >= 0, linked[rows][np.maximum(positions, 0)], -1)
    return [[v] if v >= 0 else [] for v in found.tolist()]


def _types(from_type: str, to_type: str) -> list[dict[str, Any]]:
    if to_type == "companies":
        return [
            {"category": "HUBSPOT_DEFINED", "typeId": PRIMARY_COMPANY, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": DEAL_TO_COMPANY, "label": None},
        ]
    type_id = TO_DEAL[from_type] if to_type == "deals" else FROM_DEAL[to_type]
    return [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]


def associations(portal: Portal, from_type: str, to_type: str, body: Any) -> Response:
    """``POST /crm/v4/associations/{from}/{to}/batch/read`` (module docstring)."""
    from_type, to_type = _plural(from_type), _plural(to_type)
    wanted = _inputs(body, ASSOCIATIONS_MAX)
    if isinstance(wanted, JSONResponse):
        return wanted
    targets = _targets(portal, from_type, to_type, _numbers(wanted))
    if targets is None:
        return _error(400, f"Unsupported association {from_type} -> {to_type}", "VALIDATION_ERROR")
    types = _types(from_type, to_type)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for ident, found in zip(wanted, targets, strict=True):
        if found:
            to = [{"toObjectId": t, "associationTypes": types} for t in found]
            results.append({"from": {"id": ident}, "to": to})
            continue
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
    return _answer(results, errors)


def batch_read(portal: Portal, object_type: str, body: Any) -> Response:
    """``POST /crm/v3/objects/{type}/batch/read`` (module docstring)."""
    wanted = _inputs(body, BATCH_MAX)
    if isinstance(wanted, JSONResponse):
        return wanted
    numbers = _numbers(wanted)
    properties = body.get("properties") if isinstance(body, dict) else None
    if object_type == "companies":
        names = portal.links().company_names
        found = [int(n) for n in numbers if int(n) in names]
        results = [_company(c, names[c]) for c in found]
    else:
        rows, ids = portal.tables[object_type].rows_where(archived=False)
        positions = pd.Index(ids).get_indexer(pd.Index(numbers))
        hit = np.unique(positions[positions >= 0])
        found = ids[hit].tolist()
        results = portal.render(
            object_type, rows[hit], ids[hit], wanted_properties(properties), archived=False
        )
    missing = [w for w, n in zip(wanted, numbers.tolist(), strict=True) if n not in set(found)]
    errors = []
    if missing:
        kind = object_type.upper().rstrip("S")
        message = f"Could not get some {kind} objects, they may be deleted or not exist."
        errors.append(
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": message,
                "context": {"ids": missing},
                "links": {},
            }
        )
    portal.state.page_served()
    return _answer(results, errors)


def _company(ident: int, name: str) -> dict[str, Any]:
    return {
        "id": str(ident),
        "properties": {
            "name": name,
            "hs_object_id": str(ident),
            "createdate": _COMPANY_STAMP,
            "hs_lastmodifieddate": _COMPANY_STAMP,
        },
        "createdAt": _COMPANY_STAMP,
        "updatedAt": _COMPANY_STAMP,
        "archived": False,
    }
