"""Sandbox HubSpot's portal: the records in HubSpot's wire format, search and paging.

``Portal`` turns the sandbox's CRM-neutral frames into HubSpot objects (every property a string
or null), filters and sorts searches column-wise with numpy, and answers each endpoint's body;
``connectors/sandbox/hubspot.py`` mounts the routes on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import QueryParams

from connectors.sandbox.common import SandboxState, day, flag, utc_iso
from connectors.sandbox.hubspot_links import Links, derive, wanted_properties

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
        keep = (deleted if archived else ~deleted) & ~flag(frame, "is_purged")[self.rows]
        return self.rows[keep], self.ids[keep]


def invalid(exc: Exception) -> JSONResponse:
    return _error(400, f"There was a problem with the request: {exc}", "VALIDATION_ERROR")


def unknown_type(object_type: str) -> JSONResponse:
    return _error(404, f"Unable to infer object type from: {object_type}", "OBJECT_NOT_FOUND")


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


def _inline(
    object_type: str, links: Links, rows: Ints, with_deals: bool, with_companies: bool
) -> tuple[str, list[list[dict[str, str]]]] | None:
    """The associations list endpoints return inline: (``deals`` or ``companies``, per row)."""
    if with_deals:
        kind = f"{ACTIVITY_TYPES[object_type]}_to_deal"
        deals = links.activity_deals[rows].tolist()
        return "deals", [[{"id": str(d), "type": kind}] if d >= 0 else [] for d in deals]
    if with_companies:
        # HubSpot lists the primary company twice: labelled and unlabeled.
        types = ("deal_to_company", "deal_to_company_unlabeled")
        companies = links.deal_companies[rows].tolist()
        return "companies", [
            [{"id": str(c), "type": t} for t in types] if c >= 0 else [] for c in companies
        ]
    return None


class Portal:
    """One HubSpot portal over the sandbox's records: ids, rendering, search and paging."""

    def __init__(self, state: SandboxState, page_size: int) -> None:
        self.state = state
        self.page_size = page_size
        data = state.data
        # Rows are never added or removed (touch only edits values), so ids are computed once.
        deal_ids = _ids(data.deals["external_id"])
        activity_ids = _ids(data.activities["external_id"])
        self.activity_kind = data.activities["type"].to_numpy(dtype=str)
        # Owners never change in the demo data: converted once, indexed per page. Links may
        # (a test re-associates an activity): derived again when the version moves.
        self.owner_ids = {
            "deals": _key_ids(data.deals["owner_key"]),
            "activities": _key_ids(data.activities["owner_key"]),
        }
        self._links: Links | None = None
        self.tables: dict[str, _Table] = {
            "deals": _Table(lambda: state.data.deals, np.arange(deal_ids.size), deal_ids),
        }
        for object_type, kind in ACTIVITY_TYPES.items():
            rows = np.flatnonzero(self.activity_kind == kind)
            self.tables[object_type] = _Table(
                lambda: state.data.activities, rows, activity_ids[rows]
            )
        self.stage_ids = {
            str(s): STAGE_IDS.get(str(s), str(s).lower().replace(" ", ""))
            for s in data.stages["stage"]
        }
        # object type -> (data version, live rows, their ids, property columns read so far). Every
        # search filters all live rows; reading and converting their columns for every page made
        # a full read quadratic, so they are kept until the records change.
        self.live: dict[str, tuple[int, Ints, Ints, dict[str, Ints]]] = {}

    def links(self) -> Links:
        """Activity -> deal and deal -> company ids as the frames say now."""
        if self._links is None or self._links.version != self.state.version:
            data = self.state.data
            self._links = derive(self.state.version, data.deals, data.activities, _ids)
        return self._links

    def live_rows(self, object_type: str) -> tuple[Ints, Ints, dict[str, Ints]]:
        entry = self.live.get(object_type)
        if entry is None or entry[0] != self.state.version:
            rows, ids = self.tables[object_type].rows_where(archived=False)
            entry = self.live[object_type] = (self.state.version, rows, ids, {})
        return entry[1], entry[2], entry[3]

    def account(self) -> dict[str, Any]:
        """``GET /account-info/v3/details`` as HubSpot documents it."""
        now = pd.Timestamp.now(tz=self.state.timezone)
        offset = now.utcoffset()
        ms = int(offset.total_seconds() * 1000) if offset is not None else 0
        sign, minutes = ("-" if ms < 0 else "+"), abs(ms) // 60_000
        return {
            "portalId": 62515,
            "accountType": "STANDARD",
            "timeZone": self.state.timezone,
            "companyCurrency": self.state.currency,
            "additionalCurrencies": [],
            "utcOffset": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
            "utcOffsetMilliseconds": ms,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }

    def denied(self, request: Request) -> JSONResponse | None:
        authorization = request.headers.get("Authorization")
        if self.state.token_ok(authorization):
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

    # -------------------------------------------------------------- rendering

    def column(self, object_type: str, prop: str, rows: Ints, ids: Ints) -> Ints:
        if prop == "hs_object_id":
            return ids
        frame = self.tables[object_type].frame()
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
        self,
        object_type: str,
        rows: Ints,
        ids: Ints,
        wanted: set[str] | None,
        archived: bool,
        with_deals: bool = False,
        with_companies: bool = False,
    ) -> list[dict[str, Any]]:
        # Column-wise on the page's rows: per-value pandas calls would dominate 100k-record
        # reads.
        page = self.tables[object_type].frame().iloc[rows]
        if object_type == "deals":
            props = self.deal_columns(page)
            props["hubspot_owner_id"] = self.owner_ids["deals"][rows]
        else:
            props = activity_columns(object_type, page)
            props["hubspot_owner_id"] = self.owner_ids["activities"][rows]
        props["hs_object_id"] = ids.astype(str).astype(object)
        names = ALWAYS | (wanted if wanted is not None else DEFAULTS[object_type])
        shown = {k: v.tolist() for k, v in props.items() if k in names}
        created = props["createdate"].tolist()
        modified = props["hs_lastmodifieddate"].tolist()
        inline = _inline(object_type, self.links(), rows, with_deals, with_companies)
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
            if inline is not None:
                record["associations"] = {inline[0]: {"results": inline[1][i]}}
            out.append(record)
        return out

    def deal_columns(self, page: pd.DataFrame) -> dict[str, Objs]:
        closed = (page["status"] != "open").to_numpy()
        won = (page["status"] == "won").to_numpy()
        # The forecast day starts at midnight in the portal's zone (HubSpot's date picker).
        due = pd.to_datetime(page["close_date"].astype(object)).dt.tz_localize(self.state.timezone)
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
            "dealstage": _objects(
                page["stage"].astype(str).map(lambda s: self.stage_ids.get(s, s))
            ),
            "pipeline": _objects(page["pipeline"]),
            "hs_lastmodifieddate": _iso(page["modified_at"]),
            # Blank in the company currency, as HubSpot leaves it.
            "deal_currency_code": _objects(
                page["currency"].where(page["currency"] != self.state.currency)
            ),
            "hs_is_closed": np.where(closed, "true", "false").astype(object),
            "hs_is_closed_won": np.where(won, "true", "false").astype(object),
        }

    def matches(
        self, object_type: str, rows: Ints, ids: Ints, groups: Any, cache: dict[str, Ints]
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
                    cache[prop] = self.column(object_type, prop, rows, ids)
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

    # -------------------------------------------------------------- answers

    def search(self, object_type: str, body: Any) -> Response:
        try:
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            offset = int(body.get("after") or 0)
            if offset >= SEARCH_CAP:
                raise _BadRequest(
                    f"Paging beyond {SEARCH_CAP} results is not supported (after={offset})"
                )
            limit = max(1, min(int(body.get("limit") or 10), SEARCH_MAX, self.page_size))
            rows, ids, cache = self.live_rows(object_type)
            keep = self.matches(object_type, rows, ids, body.get("filterGroups"), cache)
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
                key = (
                    cache[prop][keep]
                    if prop in cache
                    else self.column(object_type, prop, rows, ids)
                )
                page = ordered(key, descending, offset, end)
            else:
                page = np.zeros(0, dtype=np.int64)
            wanted = wanted_properties(body.get("properties"))
        except (_BadRequest, ValueError, TypeError) as exc:
            return invalid(exc)
        payload: dict[str, Any] = {
            "total": int(rows.size),
            "results": self.render(object_type, rows[page], ids[page], wanted, archived=False),
        }
        if end < rows.size:
            payload["paging"] = {"next": {"after": str(end)}}
        self.state.page_served()
        return JSONResponse(payload)

    def list_objects(self, object_type: str, q: QueryParams) -> Response:
        try:
            limit = max(1, min(int(q.get("limit") or 10), LIST_MAX, self.page_size))
            after = int(q.get("after") or 0)
        except ValueError as exc:
            return _error(400, f"Invalid paging: {exc}", "VALIDATION_ERROR")
        archived = q.get("archived", "false").lower() == "true"
        rows, ids = self.tables[object_type].rows_where(archived=archived)
        # ``after`` is the next id: later pages do not shift when records change.
        start = int(np.searchsorted(ids, after))
        page = np.arange(start, min(start + limit, ids.size))
        wanted = wanted_properties(q.get("properties"))
        asked = str(q.get("associations", "")).split(",")
        with_deals = object_type in ACTIVITY_TYPES and "deals" in asked
        with_companies = object_type == "deals" and "companies" in asked
        results = self.render(
            object_type, rows[page], ids[page], wanted, archived, with_deals, with_companies
        )
        payload: dict[str, Any] = {"results": results}
        if start + limit < ids.size:
            payload["paging"] = {"next": {"after": str(ids[start + limit])}}
        self.state.page_served()
        return JSONResponse(payload)

    def owners(self, q: QueryParams) -> Response:
        try:
            limit = max(1, min(int(q.get("limit") or 100), OWNERS_MAX, self.page_size))
            offset = int(q.get("after") or 0)
        except ValueError as exc:
            return _error(400, f"Invalid paging: {exc}", "VALIDATION_ERROR")
        archived = q.get("archived", "false").lower() == "true"
        reps = self.state.data.reps
        chosen = reps[reps["is_active"].astype(bool) != archived]
        if q.get("email"):
            chosen = chosen[chosen["email"] == q["email"].strip().lower()]
        teams = dict(
            zip(self.state.data.teams["team_key"], self.state.data.teams["name"], strict=True)
        )
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
        self.state.page_served()
        return JSONResponse(payload)

    def pipelines(self) -> Response:
        stamp = "2020-01-01T00:00:00.000Z"
        results: list[dict[str, Any]] = []
        for pipeline, stages in self.state.data.stages.groupby("pipeline", sort=False):
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
                            "id": self.stage_ids.get(str(s["stage"]), str(s["stage"])),
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
