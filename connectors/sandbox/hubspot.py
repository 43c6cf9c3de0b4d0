"""Sandbox HubSpot: CRM v3 objects, search, owners, pipelines, v4 associations, OAuth refresh.

Serves the demo data in HubSpot's wire format: owners (the demo's reps and managers; the
inactive ones only with ``archived=true``), deals and the four activity objects (calls,
emails, meetings, tasks). Ids are numeric strings derived from the demo keys (``hubspot_id``),
so a test can tell which demo record a HubSpot record is. Every property is a string or null;
``hs_timestamp`` is ISO-8601 on calls and meetings and epoch milliseconds on emails and tasks,
as both occur in real portals.

``POST /crm/v3/objects/{type}/search`` supports filter groups (EQ, NEQ, GT, GTE, LT, LTE,
BETWEEN, HAS_PROPERTY, NOT_HAS_PROPERTY) and one sort on ``hs_object_id``,
``hs_lastmodifieddate``, ``createdate``/``hs_createdate`` and ``hs_timestamp``; ``after`` is an
offset, and like HubSpot an offset of 10,000 or more is a 400. Search leaves archived
(the demo's deleted) deals out; ``GET /crm/v3/objects/deals?archived=true`` lists them with
``archivedAt`` (activities with ``associations=deals`` carry their deal inline; search
results need ``POST /crm/v4/associations/{type}/deals/batch/read``). Pages are at most
``page_size`` long (HubSpot: 200 for search, 100 for lists), whatever the client asks for.

Unknown bearer tokens get HubSpot's 401 ``EXPIRED_AUTHENTICATION`` body; ``POST
/oauth/v1/token`` (form, ``grant_type=refresh_token``) issues new ones. The common rate-limit
fault answers 429 with HubSpot's ``RATE_LIMIT`` body and ``X-HubSpot-RateLimit-*`` headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandbox.common import SandboxState, day, install, utc_iso

Ints = npt.NDArray[np.int64]
Objs = npt.NDArray[np.object_]

# Id ranges per kind: numeric like HubSpot's, and disjoint so a mix-up shows.
BASES = {"R": 60_000_000, "T": 170_000, "D": 9_000_000_000, "A": 40_000_000_000}
USER_BASE = 1_290_000
SEARCH_CAP = 10_000
SEARCH_MAX = 200
LIST_MAX = 100
OWNERS_MAX = 500
# HubSpot's default pipeline stage ids for the demo's stages.
STAGE_IDS = {
    "Prospecting": "appointmentscheduled",
    "Qualification": "qualifiedtobuy",
    "Proposal": "presentationscheduled",
    "Negotiation": "decisionmakerboughtin",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}
ACTIVITY_TYPES = {"calls": "call", "emails": "email", "meetings": "meeting", "tasks": "task"}
SUBJECTS = {
    "calls": "hs_call_title",
    "emails": "hs_email_subject",
    "meetings": "hs_meeting_title",
    "tasks": "hs_task_subject",
}
# Properties always returned, and returned when the request names none.
ALWAYS = {"hs_object_id", "createdate", "hs_createdate", "hs_lastmodifieddate"}
DEFAULTS = {
    "deals": {"dealname", "amount", "closedate", "pipeline", "dealstage"},
    **{t: {"hs_timestamp", "hubspot_owner_id", SUBJECTS[t]} for t in ACTIVITY_TYPES},
}
_SORTABLE = {"hs_object_id", "hs_lastmodifieddate", "createdate", "hs_createdate", "hs_timestamp"}
_COMPOSITE_SHIFT = 21
_NAT = np.iinfo(np.int64).min


def hubspot_id(key: str) -> str:
    """The HubSpot id of a demo key: ``R0007`` (owner), ``T001`` (team), ``D000123``,
    ``A0000042``."""
    return str(BASES[key[0]] + int(key[1:]))


def _ids(keys: pd.Series) -> Ints:
    text = keys.astype("string")
    base = text.str[0].map(BASES).fillna(0).astype(np.int64).to_numpy()
    numbers = pd.to_numeric(text.str[1:], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    out: Ints = np.where(numbers >= 0, base + numbers, -1).astype(np.int64)
    return out


def _ms(values: pd.Series) -> Ints:
    # Floored to the millisecond, like the ISO strings served (utc_iso).
    out: Ints = pd.DatetimeIndex(values).as_unit("ms").asi8.astype(np.int64)
    return out


def _error(status: int, message: str, category: str, **extra: Any) -> JSONResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return JSONResponse(body, status_code=status)


class _BadRequest(Exception):
    pass


def _number(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def _key_ids(keys: pd.Series) -> Objs:
    ids = _ids(keys)
    out: Objs = ids.astype(str).astype(object)
    out[ids < 0] = None
    return out


def _objects(values: pd.Series) -> Objs:
    """Plain Python values, missing ones as None (JSON null)."""
    out: Objs = np.array(values.astype(object), dtype=object)  # a writable copy
    out[pd.isna(out)] = None
    return out


def _iso(values: pd.Series) -> Objs:
    """``2026-11-02T10:04:05.123Z`` per value (None for missing), like ``utc_iso``."""
    ms = _ms(pd.to_datetime(values, utc=True))
    # numpy formats whole arrays at once; pandas' strftime is far slower per call.
    text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    out: Objs = np.char.add(text, "Z").astype(object)
    out[ms == _NAT] = None
    return out


@dataclass
class _Table:
    """One object type: its rows in the demo frame (id order) and their ids."""

    frame: Callable[[], pd.DataFrame]
    rows: Ints
    ids: Ints

    def rows_where(self, archived: bool) -> tuple[Ints, Ints]:
        frame = self.frame()
        if "is_deleted" in frame.columns:
            deleted = frame["is_deleted"].to_numpy(dtype=bool)[self.rows]
        else:
            deleted = np.zeros(self.rows.size, dtype=bool)
        keep = deleted if archived else ~deleted
        return self.rows[keep], self.ids[keep]


def create_app(state: SandboxState, *, page_size: int = 100) -> FastAPI:
    app = FastAPI(title="Sandbox HubSpot")
    data = state.data

    def limit_headers(remaining: int, limit: int, left: float) -> dict[str, str]:
        # HubSpot states the window's length, not the time left in it.
        return {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(state.faults.window * 1000)),
        }

    def limit_body() -> dict[str, Any]:
        return {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "SECONDLY",
        }

    install(app, state, limit_headers=limit_headers, limit_body=limit_body)

    # Rows are never added or removed (touch only edits values), so ids are computed once.
    deal_ids = _ids(data.deals["external_id"])
    activity_ids = _ids(data.activities["external_id"])
    activity_index = pd.Index(activity_ids)
    activity_kind = data.activities["type"].to_numpy(dtype=str)
    # Owners and deal links never change in the demo data: converted once, indexed per page.
    owner_ids = {
        "deals": _key_ids(data.deals["owner_key"]),
        "activities": _key_ids(data.activities["owner_key"]),
    }
    activity_deals = _ids(data.activities["deal_external_id"])
    tables: dict[str, _Table] = {
        "deals": _Table(lambda: state.data.deals, np.arange(deal_ids.size), deal_ids),
    }
    for object_type, kind in ACTIVITY_TYPES.items():
        rows = np.flatnonzero(activity_kind == kind)
        tables[object_type] = _Table(lambda: state.data.activities, rows, activity_ids[rows])
    stage_ids = {
        str(s): STAGE_IDS.get(str(s), str(s).lower().replace(" ", "")) for s in data.stages["stage"]
    }

    def denied(request: Request) -> JSONResponse | None:
        authorization = request.headers.get("Authorization")
        if state.token_ok(authorization):
            return None
        if not authorization:
            return _error(
                401,
                "Authentication credentials not found.",
                "INVALID_AUTHENTICATION",
            )
        return _error(
            401,
            "The OAuth token used to make this call expired 75 second(s) ago.",
            "EXPIRED_AUTHENTICATION",
        )

    def unknown_type(object_type: str) -> JSONResponse:
        return _error(404, f"Unable to infer object type from: {object_type}", "OBJECT_NOT_FOUND")

    # -------------------------------------------------------------- rendering

    def column(object_type: str, prop: str, rows: Ints, ids: Ints) -> Ints:
        if prop == "hs_object_id":
            return ids
        frame = tables[object_type].frame()
        name = {
            "hs_lastmodifieddate": "modified_at",
            "createdate": "created_at" if object_type == "deals" else "occurred_at",
            "hs_createdate": "created_at" if object_type == "deals" else "occurred_at",
            "hs_timestamp": "occurred_at",
        }.get(prop)
        if name is None or name not in frame.columns:
            raise _BadRequest(f"Property {prop!r} cannot be used to filter or sort")
        return _ms(frame[name].iloc[rows])

    def render(
        object_type: str,
        rows: Ints,
        ids: Ints,
        wanted: set[str] | None,
        archived: bool,
        with_deals: bool = False,
    ) -> list[dict[str, Any]]:
        # Column-wise on the page's rows: per-value pandas calls would dominate 100k-record
        # reads.
        page = tables[object_type].frame().iloc[rows]
        if object_type == "deals":
            props = deal_columns(page)
            props["hubspot_owner_id"] = owner_ids["deals"][rows]
        else:
            props = activity_columns(object_type, page)
            props["hubspot_owner_id"] = owner_ids["activities"][rows]
        props["hs_object_id"] = ids.astype(str).astype(object)
        names = ALWAYS | (wanted if wanted is not None else DEFAULTS[object_type])
        shown = {k: v.tolist() for k, v in props.items() if k in names}
        created = props["createdate"].tolist()
        modified = props["hs_lastmodifieddate"].tolist()
        deals = activity_deals[rows].tolist() if with_deals else []
        singular = ACTIVITY_TYPES.get(object_type, "deal")
        out = []
        for i, ident in enumerate(props["hs_object_id"].tolist()):
            record: dict[str, Any] = {
                "id": ident,
                "properties": {k: v[i] for k, v in shown.items()},
                "createdAt": created[i],
                "updatedAt": modified[i],
                "archived": archived,
            }
            if archived:
                record["archivedAt"] = modified[i]
            if with_deals:
                linked = (
                    [{"id": str(deals[i]), "type": f"{singular}_to_deal"}] if deals[i] >= 0 else []
                )
                record["associations"] = {"deals": {"results": linked}}
            out.append(record)
        return out

    def deal_columns(page: pd.DataFrame) -> dict[str, Objs]:
        closed = (page["status"] != "open").to_numpy()
        won = (page["status"] == "won").to_numpy()
        due = pd.to_datetime(page["close_date"].astype(object), utc=True)
        # A closed deal's closedate is when it closed; an open one's is the forecast day.
        closedate = np.where(
            closed & page["closed_at"].notna().to_numpy(), _iso(page["closed_at"]), _iso(due)
        )
        created = _iso(page["created_at"])
        amount = page["amount"].to_numpy(dtype=float)
        return {
            "amount": np.array([_number(a) for a in amount], dtype=object),
            "closedate": closedate,
            "createdate": created,
            "hs_createdate": created,
            "dealname": _objects(page["name"]),
            "dealstage": _objects(page["stage"].astype(str).map(lambda s: stage_ids.get(s, s))),
            "pipeline": _objects(page["pipeline"]),
            "hs_lastmodifieddate": _iso(page["modified_at"]),
            "deal_currency_code": _objects(page["currency"]),
            "hs_is_closed": np.where(closed, "true", "false").astype(object),
            "hs_is_closed_won": np.where(won, "true", "false").astype(object),
        }

    def activity_columns(object_type: str, page: pd.DataFrame) -> dict[str, Objs]:
        occurred = _iso(page["occurred_at"])
        n = len(page)
        if object_type in ("calls", "meetings"):
            stamp = occurred
        else:
            stamp = _ms(page["occurred_at"]).astype(str).astype(object)
        props: dict[str, Objs] = {
            "hs_timestamp": stamp,
            "hs_createdate": occurred,
            "createdate": occurred,
            "hs_lastmodifieddate": _iso(page["modified_at"]),
            SUBJECTS[object_type]: _objects(page["subject"]),
        }
        fixed = {
            "calls": {"hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"},
            "emails": {"hs_email_direction": "EMAIL", "hs_email_status": "SENT"},
            "tasks": {"hs_task_status": "COMPLETED", "hs_task_type": "TODO"},
        }.get(object_type, {})
        for name, value in fixed.items():
            props[name] = np.full(n, value, dtype=object)
        if object_type == "meetings":
            props["hs_meeting_start_time"] = occurred
            props["hs_meeting_end_time"] = _iso(page["occurred_at"] + pd.Timedelta(minutes=30))
        return props

    def wanted_properties(value: Any) -> set[str] | None:
        if value is None or value == "" or value == []:
            return None
        items = value if isinstance(value, list) else str(value).split(",")
        return {str(p).strip() for p in items if str(p).strip()}

    # -------------------------------------------------------------- search

    def filter_value(prop: str, value: Any) -> int:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        if prop != "hs_object_id":
            try:
                return int(pd.Timestamp(text).tz_convert("UTC").value // 1_000_000)
            except (ValueError, TypeError):
                try:
                    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)
                except (ValueError, TypeError):
                    pass
        raise _BadRequest(f"Invalid value {value!r} for property {prop!r}")

    def matches(
        object_type: str, rows: Ints, ids: Ints, groups: Any, cache: dict[str, Ints]
    ) -> npt.NDArray[np.bool_]:
        """Rows matching any filter group; ``cache`` keeps the property columns it read."""
        if not groups:
            return np.ones(rows.size, dtype=bool)
        if not isinstance(groups, list):
            raise _BadRequest("filterGroups must be a list")
        any_group = np.zeros(rows.size, dtype=bool)
        for group in groups:
            every = np.ones(rows.size, dtype=bool)
            for f in (group or {}).get("filters") or []:
                prop, op = str(f.get("propertyName")), str(f.get("operator", "EQ")).upper()
                if prop not in cache:
                    cache[prop] = column(object_type, prop, rows, ids)
                values = cache[prop]
                if op == "HAS_PROPERTY":
                    continue
                if op == "NOT_HAS_PROPERTY":
                    every[:] = False
                    continue
                v = filter_value(prop, f.get("value"))
                if op == "EQ":
                    every &= values == v
                elif op == "NEQ":
                    every &= values != v
                elif op == "GT":
                    every &= values > v
                elif op == "GTE":
                    every &= values >= v
                elif op == "LT":
                    every &= values < v
                elif op == "LTE":
                    every &= values <= v
                elif op == "BETWEEN":
                    every &= (values >= v) & (values <= filter_value(prop, f.get("highValue")))
                else:
                    raise _BadRequest(f"Unsupported operator {op}")
            any_group |= every
        return any_group

    def ordered(key: Ints, descending: bool, start: int, end: int) -> Ints:
        """Positions ``start:end`` of the sort by ``key`` (ties: id order), without sorting
        everything when only the first pages are asked for."""
        n = key.size
        signed = -key if descending else key
        if n < (1 << _COMPOSITE_SHIFT) and (n == 0 or int(np.abs(signed).max()) < (1 << 41)):
            # One int64 key: value, then position (rows are in id order) as the tie-break.
            composite = (signed << _COMPOSITE_SHIFT) + np.arange(n, dtype=np.int64)
            if end < n:
                top = np.argpartition(composite, end - 1)[:end]
                order = top[np.argsort(composite[top])]
            else:
                order = np.argsort(composite)
        else:
            order = np.lexsort((np.arange(n), signed))
        out: Ints = order[start:end].astype(np.int64)
        return out

    # object type -> (data version, live rows, their ids, property columns read so far). Every
    # search filters all live rows; reading and converting their columns for every page made
    # a full read quadratic, so they are kept until the records change.
    live: dict[str, tuple[int, Ints, Ints, dict[str, Ints]]] = {}

    def live_rows(object_type: str) -> tuple[Ints, Ints, dict[str, Ints]]:
        entry = live.get(object_type)
        if entry is None or entry[0] != state.version:
            rows, ids = tables[object_type].rows_where(archived=False)
            entry = live[object_type] = (state.version, rows, ids, {})
        return entry[1], entry[2], entry[3]

    @app.post("/crm/v3/objects/{object_type}/search")
    async def search(object_type: str, request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        if object_type not in tables:
            return unknown_type(object_type)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            offset = int(body.get("after") or 0)
            if offset >= SEARCH_CAP:
                raise _BadRequest(
                    f"Paging beyond {SEARCH_CAP} results is not supported (after={offset})"
                )
            limit = max(1, min(int(body.get("limit") or 10), SEARCH_MAX, page_size))
            rows, ids, cache = live_rows(object_type)
            keep = matches(object_type, rows, ids, body.get("filterGroups"), cache)
            rows, ids = rows[keep], ids[keep]
            sorts = body.get("sorts") or [{"propertyName": "hs_object_id"}]
            sort = sorts[0] if isinstance(sorts[0], dict) else {"propertyName": str(sorts[0])}
            prop = str(sort.get("propertyName", "hs_object_id")).lstrip("-")
            if prop not in _SORTABLE:
                raise _BadRequest(f"Property {prop!r} cannot be used to sort")
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
            end = min(offset + limit, rows.size)
            if offset < rows.size:
                # The filter usually read the sort property already.
                key = cache[prop][keep] if prop in cache else column(object_type, prop, rows, ids)
                page = ordered(key, descending, offset, end)
            else:
                page = np.zeros(0, dtype=np.int64)
            wanted = wanted_properties(body.get("properties"))
        except (_BadRequest, ValueError, TypeError) as exc:
            return _error(400, f"There was a problem with the request: {exc}", "VALIDATION_ERROR")
        payload: dict[str, Any] = {
            "total": int(rows.size),
            "results": render(object_type, rows[page], ids[page], wanted, archived=False),
        }
        if end < rows.size:
            payload["paging"] = {"next": {"after": str(end)}}
        state.page_served()
        return JSONResponse(payload)

    # -------------------------------------------------------------- lists

    @app.get("/crm/v3/objects/{object_type}")
    async def list_objects(object_type: str, request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        if object_type not in tables:
            return unknown_type(object_type)
        q = request.query_params
        try:
            limit = max(1, min(int(q.get("limit") or 10), LIST_MAX, page_size))
            after = int(q.get("after") or 0)
        except ValueError as exc:
            return _error(400, f"Invalid paging: {exc}", "VALIDATION_ERROR")
        archived = q.get("archived", "false").lower() == "true"
        rows, ids = tables[object_type].rows_where(archived=archived)
        # ``after`` is the next id: later pages do not shift when records change.
        start = int(np.searchsorted(ids, after))
        page = np.arange(start, min(start + limit, ids.size))
        wanted = wanted_properties(q.get("properties"))
        with_deals = object_type in ACTIVITY_TYPES and "deals" in str(q.get("associations", ""))
        results = render(object_type, rows[page], ids[page], wanted, archived, with_deals)
        payload: dict[str, Any] = {"results": results}
        if start + limit < ids.size:
            payload["paging"] = {"next": {"after": str(ids[start + limit])}}
        state.page_served()
        return JSONResponse(payload)

    @app.get("/crm/v3/owners")
    async def owners(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        q = request.query_params
        try:
            limit = max(1, min(int(q.get("limit") or 100), OWNERS_MAX, page_size))
            offset = int(q.get("after") or 0)
        except ValueError as exc:
            return _error(400, f"Invalid paging: {exc}", "VALIDATION_ERROR")
        archived = q.get("archived", "false").lower() == "true"
        reps = state.data.reps
        chosen = reps[reps["is_active"].astype(bool) != archived]
        if q.get("email"):
            chosen = chosen[chosen["email"] == q["email"].strip().lower()]
        teams = dict(zip(state.data.teams["team_key"], state.data.teams["name"], strict=True))
        results = []
        for rep in chosen.iloc[offset : offset + limit].to_dict("records"):
            first, _, last = str(rep["name"]).partition(" ")
            since = utc_iso(pd.Timestamp(rep["start_date"]))
            ended = rep["end_date"]
            results.append(
                {
                    "id": hubspot_id(rep["rep_key"]),
                    "email": rep["email"],
                    "type": "PERSON",
                    "firstName": first,
                    "lastName": last,
                    "userId": USER_BASE + int(str(rep["rep_key"])[1:]),
                    "createdAt": since,
                    # Leaving is the last change to a user.
                    "updatedAt": utc_iso(pd.Timestamp(ended)) if day(ended) else since,
                    "archived": archived,
                    "teams": [
                        {
                            "id": hubspot_id(rep["team_key"]),
                            "name": teams.get(rep["team_key"]),
                            "primary": True,
                        }
                    ],
                }
            )
        payload: dict[str, Any] = {"results": results}
        if offset + limit < len(chosen):
            payload["paging"] = {"next": {"after": str(offset + limit)}}
        state.page_served()
        return JSONResponse(payload)

    @app.get("/crm/v3/pipelines/deals")
    async def pipelines(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        stamp = "2020-01-01T00:00:00.000Z"
        results: list[dict[str, Any]] = []
        for pipeline, stages in state.data.stages.groupby("pipeline", sort=False):
            results.append(
                {
                    "id": str(pipeline),
                    "label": str(pipeline),
                    "displayOrder": len(results),
                    "archived": False,
                    "createdAt": stamp,
                    "updatedAt": stamp,
                    "stages": [
                        {
                            "id": stage_ids[str(s["stage"])],
                            "label": str(s["stage"]),
                            "displayOrder": int(s["order"]) - 1,
                            "metadata": {
                                "isClosed": str(s["status"] != "open").lower(),
                                "probability": str(float(s["probability"])),
                            },
                            "archived": False,
                            "createdAt": stamp,
                            "updatedAt": stamp,
                            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                        }
                        for s in stages.sort_values("order").to_dict("records")
                    ],
                }
            )
        return JSONResponse({"results": results})

    @app.post("/crm/v4/associations/{from_type}/{to_type}/batch/read")
    async def associations(from_type: str, to_type: str, request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        from_type = from_type if from_type.endswith("s") else f"{from_type}s"
        if from_type not in ACTIVITY_TYPES or to_type.rstrip("s") != "deal":
            return _error(
                400, f"Unsupported association {from_type} -> {to_type}", "VALIDATION_ERROR"
            )
        body = await request.json()
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            return _error(400, "inputs must be a list", "VALIDATION_ERROR")
        wanted = [str(i.get("id")) if isinstance(i, dict) else str(i) for i in inputs]
        numbers = pd.to_numeric(pd.Series(wanted, dtype="string"), errors="coerce").fillna(-1)
        positions = activity_index.get_indexer(pd.Index(numbers.astype(np.int64)))
        found = (positions >= 0) & (
            activity_kind[np.maximum(positions, 0)] == ACTIVITY_TYPES[from_type]
        )
        deals = np.full(len(wanted), -1, dtype=np.int64)
        deals[found] = activity_deals[positions[found]]
        results: list[dict[str, Any]] = []
        for ident, deal in zip(wanted, deals.tolist(), strict=True):
            if deal < 0:
                continue
            results.append(
                {
                    "from": {"id": ident},
                    "to": [
                        {
                            "toObjectId": deal,
                            "associationTypes": [
                                {"category": "HUBSPOT_DEFINED", "typeId": 206, "label": None}
                            ],
                        }
                    ],
                }
            )
        now = utc_iso(pd.Timestamp.now(tz="UTC"))
        return JSONResponse(
            {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        )

    @app.post("/oauth/v1/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "refresh_token":
            return JSONResponse(
                {"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token"},
                status_code=400,
            )
        if not form.get("client_id") or not form.get("client_secret"):
            return JSONResponse(
                {"status": "BAD_CLIENT_ID", "message": "missing client_id or client_secret"},
                status_code=400,
            )
        refresh_token = str(form.get("refresh_token") or "")
        access = state.refresh(refresh_token)
        if access is None:
            return JSONResponse(
                {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"},
                status_code=400,
            )
        return JSONResponse(
            {
                "token_type": "bearer",
                "refresh_token": refresh_token,
                "access_token": access,
                "expires_in": 1800,
            }
        )

    return app
