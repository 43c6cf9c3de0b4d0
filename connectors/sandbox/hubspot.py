"""Sandbox HubSpot: CRM v3 objects, search, batch reads, owners, pipelines, v4 associations,
companies, OAuth refresh.

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
``archivedAt`` (activities with ``associations=deals`` carry their deal inline, deals with
``associations=companies`` their company; search results need the v4 association batch
reads). Pages are at most ``page_size`` long (HubSpot: 200 for search, 100 for lists),
whatever the client asks for.

Companies (one per demo account name), ``POST /crm/v4/associations/{from}/{to}/batch/read``
(activities ↔ deals, deals → companies; a 207 with ``errors`` for inputs without any) and
``POST /crm/v3/objects/{type}/batch/read`` are served by ``hubspot_links``.

``GET /account-info/v3/details`` gives the state's ``timezone`` and ``currency``: a closed
deal's ``closedate`` is its closing instant, an open one's its forecast day at midnight in the
portal's zone, and a deal in the company currency has an empty ``deal_currency_code``.

Unknown bearer tokens get HubSpot's 401 ``EXPIRED_AUTHENTICATION`` body; ``POST
/oauth/v1/token`` (form, ``grant_type=refresh_token``) issues new ones. The common rate-limit
fault answers 429 with HubSpot's ``RATE_LIMIT`` body and ``X-HubSpot-RateLimit-*`` headers.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandbox import hubspot_links as links
from connectors.sandbox.common import SandboxState, install
from connectors.sandbox.hubspot_portal import Portal, hubspot_id, invalid, unknown_type

__all__ = ["create_app", "hubspot_id"]


def create_app(state: SandboxState, *, page_size: int = 100) -> FastAPI:
    app = FastAPI(title="Sandbox HubSpot")

    def limit_headers(remaining: int, limit: int, left: float) -> dict[str, str]:
        # HubSpot states the window's length, not the time left in it.
        return {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(state.faults.window * 1000)),
        }

    install(app, state, limit_headers=limit_headers, limit_body=_limit_body)
    portal = Portal(state, page_size)
    _object_routes(app, portal)
    _account_routes(app, portal)
    _owner_and_pipeline_routes(app, portal)
    _association_routes(app, portal)
    _oauth_routes(app, state)
    return app


def _limit_body() -> dict[str, Any]:
    return {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "SECONDLY",
    }


def _object_routes(app: FastAPI, portal: Portal) -> None:
    """Deals and the four activity objects: search and lists."""

    @app.post("/crm/v3/objects/{object_type}/search")
    async def search(object_type: str, request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        if object_type not in portal.tables:
            return unknown_type(object_type)
        try:
            body = await request.json()
        except ValueError as exc:
            return invalid(exc)
        return portal.search(object_type, body)

    @app.post("/crm/v3/objects/{object_type}/batch/read")
    async def batch_read(object_type: str, request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        if object_type not in portal.tables and object_type != "companies":
            return unknown_type(object_type)
        try:
            body = await request.json()
        except ValueError as exc:
            return invalid(exc)
        return links.batch_read(portal, object_type, body)

    @app.get("/crm/v3/objects/{object_type}")
    async def list_objects(object_type: str, request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        if object_type not in portal.tables:
            return unknown_type(object_type)
        return portal.list_objects(object_type, request.query_params)


def _account_routes(app: FastAPI, portal: Portal) -> None:
    @app.get("/account-info/v3/details")
    async def details(request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        return JSONResponse(portal.account())


def _owner_and_pipeline_routes(app: FastAPI, portal: Portal) -> None:
    @app.get("/crm/v3/owners")
    async def owners(request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        return portal.owners(request.query_params)

    @app.get("/crm/v3/pipelines/deals")
    async def pipelines(request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        return portal.pipelines()


def _association_routes(app: FastAPI, portal: Portal) -> None:
    @app.post("/crm/v4/associations/{from_type}/{to_type}/batch/read")
    async def associations(from_type: str, to_type: str, request: Request) -> Response:
        if (refused := portal.denied(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None  # answered as a body without ``inputs``
        return links.associations(portal, from_type, to_type, body)


def _oauth_routes(app: FastAPI, state: SandboxState) -> None:
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
