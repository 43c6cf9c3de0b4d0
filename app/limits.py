"""Request limits: body size (before the body is read) and a request rate per API key.

The rate limit is a token bucket per key in this process: ``QG_RATE_LIMIT_PER_MINUTE``
tokens refill per minute up to ``QG_RATE_LIMIT_BURST``; an empty bucket answers 429 with
``Retry-After``. With several API processes each keeps its own buckets (a key gets N times the
rate), which is the usual trade for not putting a shared store on every request.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.deps import CurrentKey, SettingsDep
from app.exceptions import RateLimitedError, error_body

WRITE_METHODS = ("POST", "PUT", "PATCH")


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int, per_minute: float, burst: int, now: float | None = None) -> float:
        """0 if the request may go on, else the seconds until a token is there."""
        now = time.monotonic() if now is None else now
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(tokens=float(burst), at=now)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


def limiter_of(app: Any) -> RateLimiter:
    """The app's buckets (one set per app: tests build many apps, key ids repeat)."""
    limiter: RateLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        limiter = app.state.rate_limiter = RateLimiter()
    return limiter


async def rate_limit(request: Request, principal: CurrentKey, settings: SettingsDep) -> None:
    """Router dependency: 429 with Retry-After once a key exceeds its rate. Async: it does
    no I/O, and a sync dependency would cost a thread-pool hop on every request."""
    if settings.rate_limit_per_minute <= 0:
        return
    wait = limiter_of(request.app).take(
        principal.key_id, settings.rate_limit_per_minute, settings.rate_limit_burst
    )
    if wait > 0:
        raise RateLimitedError(
            f"rate limit of {settings.rate_limit_per_minute:g} requests per minute "
            "for this API key exceeded",
            retry_after=math.ceil(wait),
        )


class BodyLimitMiddleware:
    """413 for a body over the limit, decided from Content-Length before reading it; 411 for
    a write without a length (a chunked body could be any size)."""

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json = max_json_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        multipart = headers.get("content-type", "").startswith("multipart/")
        # Multipart carries a file plus its framing.
        limit = self.max_upload + 64 * 1024 if multipart else self.max_json
        if length is None:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await _reject(send, 411, "length_required", "send a Content-Length header")
                return
        elif not length.isdigit() or int(length) > limit:
            await _reject(
                send,
                413,
                "payload_too_large",
                f"request body larger than {limit} bytes",
            )
            return
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    import json

    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
