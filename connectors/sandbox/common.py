"""What every sandbox CRM shares: seeded data, fault injection, rate limits, admin routes.

A sandbox is a real HTTP server (``quotagap sandbox-crm --kind hubspot --port 8801``) that
speaks one CRM's wire format for the endpoints Quota Gap uses. It serves the records it is
given (``CrmRecords``: plain frames); the service's demo generator provides them
(``app.demo.sandbox.sandbox_state``), so every sandbox started with the same seed knows the
same people (same emails): a rep present in two sandbox CRMs is one person.

Faults are switched on through ``POST /_sandbox/faults`` (JSON), for the next N requests to
the CRM endpoints (admin routes are never faulted):

* ``{"status": 503, "count": 2}``: answer 503 (any status) instead of the real answer
* ``{"timeout": 2.0, "count": 1}``: sleep that many seconds before answering
* ``{"malformed": 1}``: answer 200 with a truncated JSON body
* ``{"rate_limit": 20, "window": 2.0}``: at most 20 requests per window; 429 + Retry-After
* ``{"mutate_after": 3, "mutate_count": 50}``: after the 3rd data page, change 50 records
  (new amount, ``modified_at`` = now): the "records changed while paging" case

Auth: the sandbox accepts the access token ``sandbox-token`` and tokens its OAuth endpoint
issued for the refresh token ``sandbox-refresh``; ``POST /_sandbox/expire-tokens`` revokes all
access tokens, so the next call gets the CRM's 401 and the client must refresh.

A test marks records gone without a trace (``is_purged``, see ``flag``) on the frames, and
bumps ``version``. ``POST /_sandbox/touch {"count": 10}`` changes records now; ``GET
/_sandbox/stats`` tells how many requests and 429s were served; ``POST /_sandbox/reset``
clears faults.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

LimitHeaders = Callable[[int, int, float], dict[str, str]]


@dataclass
class Faults:
    status: int | None = None
    status_count: int = 0
    timeout: float = 0.0
    timeout_count: int = 0
    malformed: int = 0
    rate_limit: int | None = None
    window: float = 1.0
    mutate_after: int | None = None
    mutate_count: int = 0


class CrmRecords(Protocol):
    """The CRM-neutral frames a sandbox serves (the demo generator's ``DemoData`` has this
    shape): people keyed by ``reps.rep_key`` in teams keyed by ``teams.team_key``, deals and
    activities owned through ``owner_key``, and ``stages`` describing the pipeline. The
    sandbox changes ``deals`` in place (``touch``)."""

    @property
    def teams(self) -> pd.DataFrame: ...
    @property
    def reps(self) -> pd.DataFrame: ...
    @property
    def deals(self) -> pd.DataFrame: ...
    @property
    def activities(self) -> pd.DataFrame: ...
    @property
    def stages(self) -> pd.DataFrame: ...


@dataclass
class SandboxState:
    """The CRM's records (CRM-neutral frames) and the switches tests flip."""

    data: CrmRecords
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    rate_limited: int = 0
    data_pages: int = 0
    window_start: float = field(default_factory=time.monotonic)
    window_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    seed: int = 0
    # Access tokens the sandbox accepts; OAuth refresh endpoints issue new ones.
    tokens: set[str] = field(default_factory=lambda: {"sandbox-token"})
    refresh_tokens: set[str] = field(default_factory=lambda: {"sandbox-refresh"})
    issued: int = 0
    # Bumped whenever records change, so servers may cache what they derive from them.
    version: int = 0
    # The account's own settings (HubSpot's account-info): its time zone, in which a closed
    # deal's day is counted and an open deal's forecast day starts, and its company currency,
    # which a deal in it leaves blank (HubSpot: an empty deal_currency_code).
    timezone: str = "UTC"
    currency: str = "USD"
    # Custom activity types of the account (Pipedrive's /v1/activityTypes): key -> icon_key.
    activity_types: dict[str, str] = field(default_factory=dict)

    def token_ok(self, authorization: str | None) -> bool:
        """Accepts ``Bearer <token>`` or a bare token (API-token headers)."""
        if not authorization:
            return False
        token = authorization.removeprefix("Bearer ").removeprefix("bearer ").strip()
        return token in self.tokens

    def refresh(self, refresh_token: str | None) -> str | None:
        """A new access token for a known refresh token (None if unknown)."""
        if refresh_token not in self.refresh_tokens:
            return None
        with self.lock:
            self.issued += 1
            token = f"sandbox-access-{self.issued}"
            self.tokens.add(token)
            return token

    def touch(self, count: int) -> list[str]:
        """Change ``count`` deals now: a new amount and ``modified_at``; returns their ids."""
        with self.lock:
            deals = self.data.deals
            rng = np.random.default_rng(self.seed + self.requests + 1)
            chosen = rng.choice(len(deals), size=min(count, len(deals)), replace=False)
            # Later than every stamp already served, even when the demo data runs to the end
            # of "today": a change must sort after what the client has seen.
            now = max(
                pd.Timestamp(datetime.now(UTC)),
                deals["modified_at"].max() + pd.Timedelta(seconds=1),
            )
            deals.loc[deals.index[chosen], "amount"] = (
                deals["amount"].iloc[chosen].to_numpy() * 1.1
            ).round(2)
            deals.loc[deals.index[chosen], "modified_at"] = now
            self.version += 1
            return [str(x) for x in deals["external_id"].iloc[chosen]]

    def page_served(self) -> None:
        """Called by a data endpoint after it built a page (for ``mutate_after``)."""
        f = self.faults
        self.data_pages += 1
        if f.mutate_after is not None and self.data_pages == f.mutate_after:
            self.touch(f.mutate_count)
            f.mutate_after = None


def install(
    app: FastAPI, state: SandboxState, *, limit_headers: LimitHeaders, limit_body: Callable[[], Any]
) -> None:
    """Add the fault middleware and the ``/_sandbox`` admin routes to a CRM app."""
    app.state.sandbox = state
    _fault_middleware(app, state, limit_headers=limit_headers, limit_body=limit_body)
    _admin_routes(app, state)


def _fault_middleware(
    app: FastAPI, state: SandboxState, *, limit_headers: LimitHeaders, limit_body: Callable[[], Any]
) -> None:
    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return await call_next(request)
        f = state.faults
        with state.lock:
            state.requests += 1
            limited = _over_limit(state)
            status = None
            if f.status_count > 0:
                f.status_count -= 1
                status = f.status
            delay = 0.0
            if f.timeout_count > 0:
                f.timeout_count -= 1
                delay = f.timeout
            malformed = f.malformed > 0
            if malformed:
                f.malformed -= 1
        if limited is not None:
            remaining_window, limit = limited
            state.rate_limited += 1
            headers = {
                "Retry-After": str(max(1, round(remaining_window))),
                **limit_headers(0, limit, remaining_window),
            }
            return JSONResponse(limit_body(), status_code=429, headers=headers)
        if delay:
            await asyncio.sleep(delay)
        if status is not None:
            return JSONResponse({"error": "sandbox fault"}, status_code=status)
        response = await call_next(request)
        if f.rate_limit:
            used = state.window_count
            left = max(0.0, f.window - (time.monotonic() - state.window_start))
            for k, v in limit_headers(max(0, f.rate_limit - used), f.rate_limit, left).items():
                response.headers[k] = v
        if malformed:
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            return Response(
                body[: max(1, len(body) // 2)], status_code=200, media_type="application/json"
            )
        return response


def _admin_routes(app: FastAPI, state: SandboxState) -> None:
    @app.post("/_sandbox/faults")
    async def set_faults(body: dict[str, Any]) -> dict[str, Any]:
        f = state.faults
        with state.lock:
            if "status" in body:
                f.status, f.status_count = int(body["status"]), int(body.get("count", 1))
            if "timeout" in body:
                f.timeout, f.timeout_count = float(body["timeout"]), int(body.get("count", 1))
            if "malformed" in body:
                f.malformed = int(body["malformed"])
            if "rate_limit" in body:
                f.rate_limit = None if body["rate_limit"] is None else int(body["rate_limit"])
                f.window = float(body.get("window", 1.0))
                state.window_start, state.window_count = time.monotonic(), 0
            if "mutate_after" in body:
                f.mutate_after = int(body["mutate_after"]) + state.data_pages
                f.mutate_count = int(body.get("mutate_count", 10))
        return {"ok": True}

    @app.post("/_sandbox/touch")
    async def touch(body: dict[str, Any]) -> dict[str, Any]:
        return {"touched": state.touch(int(body.get("count", 1)))}

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens() -> dict[str, Any]:
        """Every access token stops working (refresh tokens keep working)."""
        with state.lock:
            state.tokens = set()
        return {"ok": True}

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        with state.lock:
            state.faults = Faults()
        return {"ok": True}

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": state.requests,
            "rate_limited": state.rate_limited,
            "data_pages": state.data_pages,
            "deals": len(state.data.deals),
            "activities": len(state.data.activities),
        }


def _over_limit(state: SandboxState) -> tuple[float, int] | None:
    """Fixed-window limiter: (seconds left in the window, limit) when over it."""
    f = state.faults
    if not f.rate_limit:
        return None
    now = time.monotonic()
    if now - state.window_start >= f.window:
        state.window_start, state.window_count = now, 0
    state.window_count += 1
    if state.window_count > f.rate_limit:
        return f.window - (now - state.window_start), f.rate_limit
    return None


def flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A flag a test may set on the demo's frames, false where unset: ``is_archived``,
    ``is_deleted`` (an activity; deals always have it), and ``is_purged``: gone from the CRM
    without a trace (past its recycle bin), which no endpoint returns any more."""
    if column not in frame:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray(frame[column].fillna(False).astype(bool).to_numpy(), dtype=bool)


def utc_iso(value: Any, *, millis: bool = True) -> str | None:
    """``2026-11-02T10:04:05.123Z`` (HubSpot, Pipedrive v2 style)."""
    if value is None or pd.isna(value):
        return None
    ts = (
        pd.Timestamp(value).tz_convert("UTC")
        if pd.Timestamp(value).tzinfo
        else pd.Timestamp(value, tz="UTC")
    )
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ts.microsecond // 1000:03d}Z" if millis else f"{text}Z"


def day(value: Any) -> str | None:
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date().isoformat()


def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8801) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


class ServerThread:
    """A sandbox on a real socket in a background thread (tests, the demo)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
