"""Sandbox Pipedrive: the v2 and v1 endpoints the connector reads, in Pipedrive's wire format.

Served from ``state.data`` (the demo generator's frames), with Pipedrive's integer ids: reps
``R0007`` -> user 7, deals ``D000042`` -> 42, activities ``A0000042`` -> 42; stages and the
pipeline from the demo stage list; organisations from the deals' distinct account names.

* ``GET /v1/users``
* ``GET /api/v2/deals`` (``updated_since``, ``status`` incl. ``deleted``, ``sort_by``
  ``id|update_time`` ascending, ``limit``, ``cursor``), ``GET /api/v2/activities`` (same
  paging), ``GET /api/v2/stages``, ``/api/v2/pipelines``, ``/api/v2/organizations?ids=``
* ``GET /v1/deals`` (``start``, ``limit``, ``status`` incl. ``all_not_deleted`` and
  ``deleted``, ``sort=update_time ASC``) and ``GET /v1/recents?items=deal&since_timestamp=``
* ``POST /oauth/token`` (HTTP Basic client auth, ``grant_type=refresh_token``)

Deleted demo deals appear only under ``status=deleted`` (v2: ``is_deleted: true``; v1:
``status: "deleted"``), without Pipedrive's 30-day limit. Cursors are keysets (the last row's
sort value and id, base64 JSON like Pipedrive's), so a record updated while a client pages
moves behind the cursor and is served again later: nothing is skipped. Auth is the
``x-api-token`` header or ``Authorization: Bearer``; the legacy ``?api_token=`` query is
deliberately refused, so a connector that leaks the token into URLs fails here. The limit
parameter is capped at ``page_size`` (Pipedrive caps at 500), so clients must follow
``next_cursor``/``more_items_in_collection`` rather than count rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandbox.common import SandboxState, flag, install
from connectors.sandbox.pipedrive_paging import (
    MAX_LIMIT,
    BadRequest,
    Order,
    since_param,
    v1_page,
    v2_page,
)

_INFO: Final = "Please check developers.pipedrive.com for more information about Pipedrive API."
UNAUTHORIZED: Final = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": _INFO,
}
OVER_LIMIT: Final = {
    "success": False,
    "error": "Request over limit",
    "errorCode": 429,
    "error_info": _INFO,
}
_V2_TIME: Final = "%Y-%m-%dT%H:%M:%SZ"
_V1_TIME: Final = "%Y-%m-%d %H:%M:%S"


def limit_headers(remaining: int, limit: int, seconds_left: float) -> dict[str, str]:
    # Pipedrive sends whole seconds; rounding up never tells a client to come back too early.
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(max(1, math.ceil(seconds_left))),
    }


def _num(values: pd.Series) -> pd.Series:
    """``"D000042"`` -> 42 (nullable: activities without a deal stay null)."""
    digits = values.astype("string").str.extract(r"(\d+)$", expand=False)
    return pd.to_numeric(digits, errors="coerce").astype("Int64")


def _fmt(values: pd.Series, pattern: str) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime(pattern)


def _days(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d")


def _body(rows: pd.DataFrame, **extra: Any) -> Response:
    # to_json does the whole page in C and turns NaN/NaT/<NA> into null.
    data = rows.to_json(orient="records", date_format="iso") if len(rows) else "null"
    parts = ['{"success":true,"data":', data]
    for key, value in extra.items():
        parts.append(f",{json.dumps(key)}:{json.dumps(value)}")
    return Response("".join(parts) + "}", media_type="application/json")


class _Tables:
    """Pipedrive-shaped frames over ``state.data``.

    Ids, stages and organisations are fixed at start; amounts and ``modified_at`` are read
    live on each request, because ``touch`` and ``mutate_after`` change them.
    """

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        data = state.data
        stages = data.stages.reset_index(drop=True)
        self.pipelines = {name: i + 1 for i, name in enumerate(pd.unique(stages["pipeline"]))}
        self.stages = pd.DataFrame(
            {
                "id": range(1, len(stages) + 1),
                "order_nr": stages["order"].astype(int),
                "name": stages["stage"],
                "is_deleted": False,
                "deal_probability": (stages["probability"] * 100).round().astype(int),
                "pipeline_id": stages["pipeline"].map(self.pipelines).astype(int),
                "is_deal_rot_enabled": False,
                "days_to_rotten": None,
            }
        )
        self.stage_ids = {
            (p, s): i + 1
            for i, (p, s) in enumerate(zip(stages["pipeline"], stages["stage"], strict=True))
        }
        accounts = sorted(set(data.deals["account"].dropna().astype(str)))
        self.orgs = pd.DataFrame({"id": range(1, len(accounts) + 1), "name": accounts})
        self.org_ids = {name: i + 1 for i, name in enumerate(accounts)}
        reps = data.reps
        users = pd.DataFrame({"id": _num(reps["rep_key"]), "key": reps["rep_key"]})
        self.user_ids = dict(zip(users["key"], users["id"].astype(int), strict=True))
        # A user's "modified" is when they joined or, for leavers, when they were deactivated.
        changed = reps["end_date"].where(reps["end_date"].notna(), reps["start_date"])
        modified = pd.to_datetime(changed).dt.tz_localize("UTC") + pd.Timedelta(hours=9)
        self.users = pd.DataFrame(
            {
                "id": users["id"],
                "name": reps["name"],
                "default_currency": "USD",
                "email": reps["email"],
                "activated": True,
                "created": _fmt(pd.to_datetime(reps["start_date"]), _V1_TIME),
                "modified": _fmt(modified, _V1_TIME),
                "active_flag": reps["is_active"].astype(bool),
                "is_deleted": False,
                "role_id": 1,
            }
        )
        self.user_objects: dict[int, dict[str, Any]] = {
            int(uid): {
                "id": int(uid),
                "name": name,
                "email": email,
                "has_pic": False,
                "pic_hash": None,
                "active_flag": bool(active),
                "value": int(uid),
            }
            for uid, name, email, active in zip(
                self.users["id"].astype(int).tolist(),
                self.users["name"].tolist(),
                self.users["email"].tolist(),
                self.users["active_flag"].tolist(),
                strict=True,
            )
        }
        # name -> (data version, frame, its orders by sort column); see ``view``.
        self._views: dict[str, tuple[int, pd.DataFrame, dict[str, Order]]] = {}
        self._views_lock = threading.RLock()  # a view may be built from another view

    def view(
        self, name: str, build: Callable[[], pd.DataFrame]
    ) -> tuple[pd.DataFrame, Callable[[str], Order]]:
        """``build()``'s frame and its sort orders, rebuilt only when the records change.

        Endpoints run on a thread pool, so the cache takes a lock. The version is read before
        building: a change landing meanwhile costs one more rebuild, never a stale page.
        """
        with self._views_lock:
            version = self.state.version
            entry = self._views.get(name)
            if entry is None or entry[0] != version:
                entry = (version, build(), {})
                self._views[name] = entry
        _, frame, orders = entry

        def order(key: str) -> Order:
            with self._views_lock:
                if key not in orders:
                    orders[key] = Order.of(frame, key)
                return orders[key]

        return frame, order

    def deals(self) -> pd.DataFrame:
        frame, _ = self.view("deals", self._deals)
        return frame

    def _deals(self) -> pd.DataFrame:
        with self.state.lock:
            deals = self.state.data.deals
            deals = deals[~flag(deals, "is_purged")].copy()
        keys = pd.Series(
            list(zip(deals["pipeline"], deals["stage"], strict=True)), index=deals.index
        )
        return deals.assign(
            id=_num(deals["external_id"]),
            owner_id=deals["owner_key"].map(self.user_ids).astype("Int64"),
            stage_id=keys.map(self.stage_ids).astype("Int64"),
            pipeline_id=deals["pipeline"].map(self.pipelines).astype("Int64"),
            org_id=deals["account"].map(self.org_ids).astype("Int64"),
        )

    def live_activities(self) -> pd.DataFrame:
        """The activities not deleted (a test sets ``is_deleted`` on the demo's activities)."""
        # Read from the records as they are now (a test may move an activity to another
        # deal): built once per data version, as every view is.
        with self.state.lock:
            acts = self.state.data.activities
            live = acts[~flag(acts, "is_deleted") & ~flag(acts, "is_purged")].copy()
        view: pd.DataFrame = live.assign(id=_num(live["external_id"]))
        return view

    @staticmethod
    def archived(deals: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Deals archived in the CRM (a test sets ``is_archived`` on the demo's deals): v2
        lists them under ``/api/v2/deals/archived`` only."""
        return flag(deals, "is_archived")

    @staticmethod
    def by_status(deals: pd.DataFrame, status: str | None) -> pd.DataFrame:
        """Pipedrive lists live deals unless asked for ``status=deleted`` (v1 and v2 alike)."""
        deleted = deals["is_deleted"].astype(bool)
        if status == "deleted":
            return deals[deleted]
        live = deals[~deleted]
        if status in {None, "", "all_not_deleted"}:
            return live
        if status in {"open", "won", "lost"}:
            return live[live["status"] == status]
        raise BadRequest(f"unknown status {status!r}")

    def v2_deals(self, p: pd.DataFrame) -> pd.DataFrame:
        closed_at = _fmt(p["closed_at"], _V2_TIME)
        closed = pd.to_datetime(p["closed_at"], utc=True)
        local = closed.dt.tz_convert(self.state.timezone).dt.strftime("%Y-%m-%d")
        return pd.DataFrame(
            {
                "id": p["id"],
                "title": p["name"],
                "creator_user_id": p["owner_id"],
                "owner_id": p["owner_id"],
                "value": p["amount"],
                "person_id": None,
                "org_id": p["org_id"],
                "stage_id": p["stage_id"],
                "pipeline_id": p["pipeline_id"],
                "currency": p["currency"],
                "add_time": _fmt(p["created_at"], _V2_TIME),
                "update_time": _fmt(p["modified_at"], _V2_TIME),
                "status": p["status"],
                "is_archived": _Tables.archived(p),
                "archive_time": _fmt(p["modified_at"], _V2_TIME).where(_Tables.archived(p)),
                "is_deleted": p["is_deleted"].astype(bool),
                "probability": (p["probability"] * 100).round().astype("Int64"),
                "close_time": closed_at,
                "won_time": closed_at.where(p["status"] == "won"),
                "lost_time": closed_at.where(p["status"] == "lost"),
                "expected_close_date": _days(p["close_date"]),
                # The company-local day of the close, in the account's time zone.
                "local_won_date": local.where(p["status"] == "won"),
                "local_lost_date": local.where(p["status"] == "lost"),
                "local_close_date": local,
                "custom_fields": [{} for _ in range(len(p))],
            },
            index=p.index,
        )

    def v1_deals(self, p: pd.DataFrame) -> pd.DataFrame:
        closed_at = _fmt(p["closed_at"], _V1_TIME)
        deleted = p["is_deleted"].astype(bool)
        owners = [self.user_objects.get(int(i)) if pd.notna(i) else None for i in p["owner_id"]]
        orgs = [
            {"name": name, "value": int(i)} if pd.notna(i) else None
            for name, i in zip(p["account"], p["org_id"], strict=True)
        ]
        return pd.DataFrame(
            {
                "id": p["id"],
                "creator_user_id": owners,
                "user_id": owners,
                "person_id": None,
                "org_id": orgs,
                "stage_id": p["stage_id"],
                "title": p["name"],
                "value": p["amount"],
                "currency": p["currency"],
                "add_time": _fmt(p["created_at"], _V1_TIME),
                "update_time": _fmt(p["modified_at"], _V1_TIME),
                "active": ~deleted,
                "deleted": deleted,
                "status": p["status"].where(~deleted, "deleted"),
                "probability": (p["probability"] * 100).round().astype("Int64"),
                "close_time": closed_at,
                "pipeline_id": p["pipeline_id"],
                "won_time": closed_at.where(p["status"] == "won"),
                "lost_time": closed_at.where(p["status"] == "lost"),
                "expected_close_date": _days(p["close_date"]),
                "org_name": p["account"],
                "owner_name": [o["name"] if o else None for o in owners],
            },
            index=p.index,
        )

    def v2_activities(self, p: pd.DataFrame) -> pd.DataFrame:
        occurred = pd.to_datetime(p["occurred_at"], utc=True)
        done = occurred <= pd.Timestamp(datetime.now(UTC))
        return pd.DataFrame(
            {
                "id": p["id"],
                "subject": p["subject"],
                "type": p["type"],
                "owner_id": p["owner_key"].map(self.user_ids).astype("Int64"),
                "is_deleted": False,
                "add_time": _fmt(occurred, _V2_TIME),
                "update_time": _fmt(p["modified_at"], _V2_TIME),
                "deal_id": _num(p["deal_external_id"]),
                "due_date": occurred.dt.strftime("%Y-%m-%d"),
                "due_time": occurred.dt.strftime("%H:%M:%S"),
                "duration": "00:30:00",
                "busy": False,
                "done": done,
                "marked_as_done_time": _fmt(p["modified_at"], _V2_TIME).where(done),
            },
            index=p.index,
        )


def create_app(state: SandboxState, *, page_size: int = 100) -> FastAPI:
    app = FastAPI(title="Quota Gap sandbox: Pipedrive")
    tables = _Tables(state)
    page_size = max(1, min(page_size, MAX_LIMIT))

    # Added before install(): the fault middleware wraps this one, so faults and rate limits
    # hit every request, as they would upstream of Pipedrive's auth.
    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith("/_sandbox") or path == "/oauth/token":
            return await call_next(request)
        token = request.headers.get("x-api-token") or request.headers.get("authorization")
        if not state.token_ok(token):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        return await call_next(request)

    install(app, state, limit_headers=limit_headers, limit_body=lambda: dict(OVER_LIMIT))

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        body = {"success": False, "error": str(exc), "errorCode": 400, "error_info": _INFO}
        return JSONResponse(body, status_code=400)

    _reference_routes(app, state, tables, page_size)
    _record_routes(app, state, tables, page_size)
    _recents_route(app, state, tables, page_size)
    _oauth_routes(app, state)
    return app


def _reference_routes(app: FastAPI, state: SandboxState, tables: _Tables, page_size: int) -> None:
    """Users, stages, pipelines and organizations."""

    @app.get("/v1/activityTypes")
    def activity_types() -> Response:
        # Pipedrive's built-in types, then the account's custom ones (``activity_types``).
        keys = ("call", "meeting", "task", "deadline", "email", "lunch")
        types = [(key, key, False) for key in keys]
        types += [(key, icon, True) for key, icon in state.activity_types.items()]
        return JSONResponse(
            {
                "success": True,
                "data": [
                    {
                        "id": i + 1,
                        "order_nr": i + 1,
                        "name": key.replace("_", " ").title(),
                        "key_string": key,
                        "icon_key": icon,
                        "active_flag": True,
                        "is_custom_flag": custom,
                    }
                    for i, (key, icon, custom) in enumerate(types)
                ],
            }
        )

    @app.get("/v1/users/me")
    def me() -> Response:
        # The API token's user, in the account's time zone (the state's).
        user = tables.users.iloc[0].to_dict()
        user["timezone_name"] = state.timezone
        return JSONResponse({"success": True, "data": json.loads(json.dumps(user, default=str))})

    @app.get("/v1/users")
    def users() -> Response:
        # The company's users as they are now: one removed from (or added back to) the reps
        # is gone from (or back in) the listing at once.
        present = tables.users["id"].isin(_num(state.data.reps["rep_key"]))
        response = _body(tables.users[present.to_numpy()])
        state.page_served()
        return response

    @app.get("/api/v2/stages")
    def stages(request: Request) -> Response:
        page, following = v2_page(tables.stages, request, page_size)
        return _body(page, additional_data={"next_cursor": following})

    @app.get("/api/v2/pipelines")
    def pipelines(request: Request) -> Response:
        frame = pd.DataFrame(
            {
                "id": list(tables.pipelines.values()),
                "name": list(tables.pipelines.keys()),
                "order_nr": range(1, len(tables.pipelines) + 1),
                "is_deleted": False,
                "is_deal_probability_enabled": True,
            }
        )
        page, following = v2_page(frame, request, page_size)
        return _body(page, additional_data={"next_cursor": following})

    @app.get("/api/v2/organizations")
    def organizations(request: Request) -> Response:
        frame = tables.orgs
        ids = request.query_params.get("ids")
        if ids:
            try:
                wanted = {int(part) for part in ids.split(",") if part.strip()}
            except ValueError as exc:
                raise BadRequest("ids must be comma-separated integers") from exc
            if len(wanted) > 100:
                raise BadRequest("at most 100 ids")
            frame = frame[frame["id"].isin(wanted)]
        page, following = v2_page(frame, request, page_size)
        return _body(page, additional_data={"next_cursor": following})


def _record_routes(app: FastAPI, state: SandboxState, tables: _Tables, page_size: int) -> None:
    """Deals (v2 and v1) and activities."""

    def v2_deals(request: Request, *, archived: bool) -> Response:
        """v2 lists archived deals apart (``/deals/archived``), the others under ``/deals``."""
        status = request.query_params.get("status")

        def build() -> pd.DataFrame:
            deals = tables.by_status(tables.deals(), status)
            kept: pd.DataFrame = deals[tables.archived(deals) == archived]
            return kept

        deals, orders = tables.view(f"deals:{archived}:{status}", build)
        page, following = v2_page(deals, request, page_size, orders)
        response = _body(tables.v2_deals(page), additional_data={"next_cursor": following})
        state.page_served()
        return response

    @app.get("/api/v2/deals")
    def deals_v2(request: Request) -> Response:
        return v2_deals(request, archived=False)

    @app.get("/api/v2/deals/archived")
    def archived_deals_v2(request: Request) -> Response:
        return v2_deals(request, archived=True)

    @app.get("/api/v2/activities")
    def activities_v2(request: Request) -> Response:
        # A deleted activity leaves the listing without a trace (only recents report it).
        activities, orders = tables.view("activities", tables.live_activities)
        page, following = v2_page(activities, request, page_size, orders)
        response = _body(tables.v2_activities(page), additional_data={"next_cursor": following})
        state.page_served()
        return response

    @app.get("/v1/deals")
    def deals_v1(request: Request) -> Response:
        q = request.query_params
        deals = tables.by_status(tables.deals(), q.get("status"))
        sort = q.get("sort", "id ASC").strip().lower()
        if sort not in {"id asc", "update_time asc"}:
            raise BadRequest("the sandbox sorts by 'id ASC' or 'update_time ASC'")
        key = "modified_at" if sort.startswith("update_time") else "id"
        page, pagination = v1_page(
            deals.sort_values([key, "id"], kind="stable"), request, page_size
        )
        response = _body(tables.v1_deals(page), additional_data={"pagination": pagination})
        state.page_served()
        return response


def _recents_route(app: FastAPI, state: SandboxState, tables: _Tables, page_size: int) -> None:
    @app.get("/v1/recents")
    def recents(request: Request) -> Response:
        q = request.query_params
        since = since_param(q.get("since_timestamp"), "since_timestamp")
        if since is None:
            raise BadRequest("since_timestamp is required")
        items = {part.strip() for part in q.get("items", "deal").split(",")}
        if items == {"activity"}:
            return _activity_recents(request, state, tables, since, page_size)
        if items != {"deal"}:
            raise BadRequest("the sandbox serves recents for items=deal or items=activity")
        deals = tables.deals()
        deals = deals[deals["modified_at"] >= since].sort_values(
            ["modified_at", "id"], kind="stable"
        )
        page, pagination = v1_page(deals, request, page_size)
        wire = tables.v1_deals(page)
        rows = pd.DataFrame(
            {
                "item": "deal",
                "id": wire["id"],
                "data": json.loads(wire.to_json(orient="records")) if len(wire) else [],
            },
            index=wire.index,
        )
        last = _fmt(page["modified_at"], _V1_TIME).iloc[-1] if len(page) else None
        extra = {
            "since_timestamp": since.strftime(_V1_TIME),
            "last_timestamp_on_page": last,
            "pagination": pagination,
        }
        response = _body(rows, additional_data=extra)
        state.page_served()
        return response


def _oauth_routes(app: FastAPI, state: SandboxState) -> None:
    @app.post("/oauth/token")
    async def oauth_token(request: Request) -> JSONResponse:
        if not _basic_client(request.headers.get("authorization")):
            body = {"success": False, "error": "Invalid client credentials", "errorCode": 401}
            return JSONResponse(body, status_code=401)
        form = parse_qs((await request.body()).decode())
        if form.get("grant_type", [""])[0] != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        refresh_token = form.get("refresh_token", [""])[0]
        token = state.refresh(refresh_token)
        if token is None:
            body = {
                "error": "invalid_grant",
                "error_description": "Invalid grant: refresh token is invalid",
            }
            return JSONResponse(body, status_code=400)
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "refresh_token": refresh_token,
                "scope": "base,deals:read,activities:read,users:read",
                "expires_in": 3599,
                "api_domain": str(request.base_url).rstrip("/"),
            }
        )


def _basic_client(header: str | None) -> bool:
    """A well-formed ``Basic base64(client_id:client_secret)`` with a client id."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    client_id, sep, _ = decoded.partition(":")
    return bool(sep and client_id)


def _activity_recents(
    request: Request, state: SandboxState, tables: _Tables, since: datetime, page_size: int
) -> Response:
    """``items=activity``: activities changed since ``since``; a deleted one as Pipedrive
    reports it, ``{"item": "activity", "id": N, "data": null}``."""
    with state.lock:
        # A deletion is a change: its time is the record's modified_at now.
        source = state.data.activities.copy()
    deleted, purged = flag(source, "is_deleted"), flag(source, "is_purged")
    frame = source.assign(id=_num(source["external_id"]), _deleted=deleted)
    frame = frame[(frame["modified_at"] >= since) & ~purged].sort_values(
        ["modified_at", "id"], kind="stable"
    )
    page, pagination = v1_page(frame, request, page_size)
    live = json.loads(tables.v2_activities(page).to_json(orient="records")) if len(page) else []
    rows = [
        {"item": "activity", "id": int(i), "data": None if gone else data}
        for i, gone, data in zip(page["id"], page["_deleted"], live, strict=True)
    ]
    extra = {"since_timestamp": since.strftime(_V1_TIME), "pagination": pagination}
    state.page_served()
    return JSONResponse({"success": True, "data": rows, "additional_data": extra})
