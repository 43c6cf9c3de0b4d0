"""Request limits: body size (before the body is read) and request rates.

Two token buckets, both in this process: ``QG_RATE_LIMIT_PER_MINUTE`` tokens refill per
minute up to ``QG_RATE_LIMIT_BURST``; an empty bucket answers 429 with ``Retry-After``.

* **Per API key** (charged by :func:`app.http.deps.check_key`, for every route under /api/v1,
  /metrics and the polling fast path alike): every request of a valid key spends a token.
* **Per client address** (:class:`AddressLimitMiddleware`, around the whole app): a request
  that fails authentication (any 401) and every ``POST /dashboard/login`` spends a token of
  its address. An address whose bucket is empty is refused before anything else runs, the
  key lookup included, so a flood of bogus keys costs no database work. The address is the
  TCP peer's, or, when the peer is one of ``QG_TRUSTED_PROXIES``, the nearest untrusted
  address in ``X-Forwarded-For`` (a header anyone else could forge, so it is otherwise
  ignored).

With several API processes each keeps its own buckets (a key gets N times the rate), which is
the usual trade for not putting a shared store on every request.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.exceptions import error_body

WRITE_METHODS = ("POST", "PUT", "PATCH")
LOGIN_PATH = "/dashboard/login"
# Buckets that have refilled are forgotten once there are this many (a client that went away
# must not hold memory for ever; a full bucket and no bucket answer alike).
PRUNE_ABOVE = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[Hashable, _Bucket] = {}
        self._lock = threading.Lock()

    def _refill(self, key: Hashable, rate: float, burst: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= PRUNE_ABOVE:
                self._prune(rate, burst, now)
            bucket = self._buckets[key] = _Bucket(tokens=float(burst), at=now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        return bucket

    def _prune(self, rate: float, burst: int, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * rate >= burst:
                del self._buckets[key]

    def take(self, key: Hashable, per_minute: float, burst: int, now: float | None = None) -> float:
        """Spend a token: 0 if the request may go on, else the seconds until one is there."""
        now = time.monotonic() if now is None else now
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._refill(key, rate, burst, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def wait(self, key: Hashable, per_minute: float, burst: int, now: float | None = None) -> float:
        """Like :meth:`take` without spending: 0 while a token is there."""
        now = time.monotonic() if now is None else now
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            bucket = self._refill(key, rate, burst, now)
            return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / rate

    def spend(self, key: Hashable, per_minute: float, burst: int, now: float | None = None) -> None:
        """Spend a token whether or not one is there (the request already ran): a client
        that keeps failing stays refused until its bucket refills."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._refill(key, per_minute / 60.0, burst, now)
            bucket.tokens = max(bucket.tokens - 1.0, -float(burst))


def limiter_of(app: Any) -> RateLimiter:
    """The app's per-key buckets (one set per app: tests build many apps, key ids repeat)."""
    limiter: RateLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        limiter = app.state.rate_limiter = RateLimiter()
    return limiter


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """``QG_TRUSTED_PROXIES``' entries as networks (an address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address a request's limits are charged to.

    The peer, unless it is a trusted proxy: then ``X-Forwarded-For`` is read from the right
    (each proxy appends the address it received from), skipping trusted proxies, and the
    first other address is the client. An entry that is not an address ends the walk: what
    lies left of it was written by whoever sent the request and proves nothing."""
    peer = peer or "unknown"
    current = _address(peer)
    if current is None or not forwarded_for or not _trusted(current, trusted):
        return str(current or peer)
    for entry in reversed(forwarded_for.split(",")):
        hop = _address(entry)
        if hop is None:
            break
        current = hop
        if not _trusted(hop, trusted):
            break
    return str(current)


def _trusted(address: Address, nets: Sequence[Network]) -> bool:
    return any(address.version == n.version and address in n for n in nets)


class AddressLimitMiddleware:
    """The per-address bucket (see the module's docstring): refuses an address whose bucket
    is empty before the app runs, and charges failed authentications and login attempts.

    The refusal is a few bytes sent from here: no route, no dependency, no database and no
    response model for a client that is being refused."""

    def __init__(self, app: ASGIApp, *, settings: Any) -> None:
        self.app = app
        self.settings = settings  # read per request: the limits are settings like any other
        self.limiter = RateLimiter()
        self._trusted: tuple[tuple[str, ...], tuple[Network, ...]] = ((), ())

    def _networks(self) -> tuple[Network, ...]:
        entries = tuple(self.settings.trusted_proxies)
        if entries != self._trusted[0]:
            self._trusted = (entries, parse_networks(entries))
        return self._trusted[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        per_minute: float = self.settings.rate_limit_per_minute
        burst: int = self.settings.rate_limit_burst
        if scope["type"] != "http" or per_minute <= 0:
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        # Each proxy may add its own header line instead of appending to one: read them all.
        forwarded = ",".join(Headers(scope=scope).getlist("x-forwarded-for"))
        address = client_address(peer[0] if peer else None, forwarded, self._networks())
        wait = self.limiter.wait(address, per_minute, burst)
        if wait > 0:
            await _reject(
                send,
                429,
                "rate_limited",
                f"rate limit of {per_minute:g} failed authentications per minute "
                "from this address exceeded",
                headers=[(b"retry-after", str(math.ceil(wait)).encode())],
            )
            return
        if scope["method"] == "POST" and scope["path"] == LOGIN_PATH:
            self.limiter.spend(address, per_minute, burst)
            await self.app(scope, receive, send)
            return

        async def charge_failures(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.limiter.spend(address, per_minute, burst)
            await send(message)

        await self.app(scope, receive, charge_failures)


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


async def _reject(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
