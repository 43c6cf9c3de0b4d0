"""Cheap polling: ``ETag``/``Last-Modified`` from data versions, 304 without doing the work.

A GET's ``ETag`` hashes the versions (:mod:`app.core.versions`) of the scopes its route reads, the
caller's key (a manager sees other rows than an admin), the path, the query and the negotiated
format. A request whose ``If-None-Match`` (or ``If-Modified-Since``) matches is answered 304 by
a dependency that runs before the route: nothing is recomputed, queried or serialised. The
reporting date is part of the tag too: "the current month" and pacing move at midnight.

The versions come from the statement that authenticated the key (:mod:`app.http.deps`). A current
client is answered before routing (:class:`RepresentationCache`), from the key and versions
:class:`KnownKeys` holds until the next commit: no database round trip at all. Whether the key
may read is decided by the routes' own check (:func:`app.http.deps.check_key`) on both paths.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import service as auth_service
from app.auth.service import Principal
from app.core import secrets
from app.core.config import Settings
from app.core.exceptions import NotModified, QuotaGapError
from app.core.versions import SCOPES, Versions, read_versions, unrecorded
from app.core.watch import CommitWatch
from app.http.deps import (
    INEXACT,
    VERSIONS,
    CurrentKey,
    KeyCheck,
    SessionDep,
    SettingsDep,
    check_key,
)
from app.http.exports import wants_csv

# Path prefix (under /api/v1) -> the scopes its answers depend on. Longest prefix wins.
ROUTE_SCOPES: dict[str, tuple[str, ...]] = {
    "/performance": ("results", "records"),
    "/leaderboard": ("results", "records"),
    "/summary": ("results", "records", "ops", "config"),
    "/snapshots": ("results",),
    "/reps": ("results", "records"),
    "/teams": ("results", "records"),
    "/wins": ("records",),
    "/hygiene": ("records",),
    "/deals": ("records",),
    "/activities": ("records",),
    "/targets": ("config", "records"),
    "/sources": ("config", "ops"),
    "/jobs": ("ops",),
    "/alerts": ("ops", "config"),
    "/alert-rules": ("config",),
    "/webhooks": ("config", "ops"),
    "/api-keys": ("config",),
}


_PREFIXES = sorted(ROUTE_SCOPES, key=len, reverse=True)


def scopes_for(path: str) -> tuple[str, ...]:
    rest = path.removeprefix("/api/v1")
    for prefix in _PREFIXES:
        if rest == prefix or rest.startswith(prefix + "/"):
            return ROUTE_SCOPES[prefix]
    return SCOPES


def _matches(header: str, etag: str) -> bool:
    # No "*": it would answer 304 before the route's role check or existence check ran. A
    # client can only hold a real tag of an answer it was allowed to see (tags are keyed,
    # so they cannot be forged either).
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def _etag_key(app: Any) -> bytes:
    key: bytes | None = getattr(app.state, "etag_key", None)
    if key is None:
        key = app.state.etag_key = secrets.derived_key(app.state.settings, "etag")
    return key


def validators(
    *,
    app: Any,
    settings: Settings,
    versions: Versions,
    key_id: int,
    scoped: bool,
    path: str,
    query: str,
    accept: str,
    max_age: int,
) -> tuple[str, dict[str, str], datetime | None]:
    """The ETag, the validator headers and Last-Modified of a GET.

    ``scoped`` (a manager's key): which rows the key may see follows the team tree, which is
    in ``records``, so that version joins the tag whatever the route reads.
    """
    scopes = scopes_for(path)
    if scoped and "records" not in scopes:
        scopes = (*scopes, "records")
    stamp = ",".join(f"{s}:{versions.get(s, (0, None))[0]}" for s in scopes)
    negotiated = "csv" if wants_csv(query, accept) else "json"
    day = datetime.now(ZoneInfo(settings.timezone)).date()
    digest = hashlib.blake2b(
        f"{stamp}|{day}|{key_id}|{path}|{query}|{negotiated}".encode(),
        key=_etag_key(app),
        digest_size=12,
    ).hexdigest()
    etag = f'"{digest}"'
    changed = [versions[s][1] for s in scopes if s in versions]
    last_modified = max(changed).replace(microsecond=0) if changed else None
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control(scopes, max_age),
        "Vary": "Authorization, Cookie, Accept",
    }
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    return etag, headers, last_modified


def http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)


async def conditional(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentKey,
) -> None:
    """Set the validators of a GET, or answer 304 if the client's copy is current."""
    if request.method not in ("GET", "HEAD"):
        return
    stashed: Versions | None = session.info.pop(VERSIONS, None)
    exact = not session.info.pop(INEXACT, False)
    if stashed is None:
        versions, exact = await run_in_threadpool(_read_versions, session)
    else:
        versions = stashed
    cached_max_age = _cached_max_age(request.app, versions)
    max_age = (
        cached_max_age
        if cached_max_age is not None
        else await run_in_threadpool(_max_age, request, session, settings, versions)
    )
    etag, headers, last_modified = validators(
        app=request.app,
        settings=settings,
        versions=versions,
        key_id=principal.key_id,
        scoped=principal.rep_ids is not None,
        path=request.url.path,
        query=request.url.query,
        accept=request.headers.get("accept", ""),
        max_age=max_age,
    )
    if not exact:
        response.headers.update(headers)
        return
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, etag):
            raise NotModified(headers)
    elif last_modified is not None and (ims := request.headers.get("if-modified-since")):
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            since = None
        if since is not None and since.tzinfo is not None and last_modified <= since:
            raise NotModified(headers)
    representations: RepresentationCache | None = request.scope.get(_CACHE)
    if representations is not None and request.method == "GET":
        hit = representations.get(etag)
        if hit is not None:
            # Answered from memory: the 304 below becomes this 200 in RepresentationCache.
            request.scope[_HIT] = hit
            raise NotModified(headers)
        request.scope[_STORE] = etag
    response.headers.update(headers)


def _read_versions(session: Session) -> tuple[Versions, bool]:
    return read_versions(session), not unrecorded(session)


def _cached_max_age(app: Any, versions: Versions) -> int | None:
    config_version = versions.get("config", (0, None))[0]
    cached = getattr(app.state, "cache_max_age", None)
    if cached is not None and cached[0] == config_version:
        return int(cached[1])
    return None


def _max_age(
    request: Request,
    session: Session,
    settings: Settings,
    versions: Versions,
) -> int:
    """``QG_CACHE_MAX_AGE_SECONDS``, or less when a source syncs more often than that: a
    client need not ask again before the next scheduled sync could have changed anything."""
    config_version = versions.get("config", (0, None))[0]
    cached = _cached_max_age(request.app, versions)
    if cached is not None:
        return cached
    from app.pipeline.scheduler import trigger_for
    from app.sources.models import Source

    max_age = settings.cache_max_age_seconds
    for schedule in session.scalars(
        select(Source.schedule).where(Source.is_enabled.is_(True), Source.kind != "csv")
    ):
        trigger = trigger_for(schedule) if schedule else None
        interval = getattr(trigger, "interval", None)
        if interval is not None:
            max_age = min(max_age, int(interval.total_seconds()))
    request.app.state.cache_max_age = (config_version, max_age)
    return max_age


# -- the representation cache

_CACHE = "qg.representations"
_HIT = "qg.representation_hit"
_STORE = "qg.representation_etag"
# Headers that come fresh from `conditional` on every answer, never from the cache.
_VALIDATORS = frozenset({b"etag", b"cache-control", b"vary", b"last-modified"})


@dataclass(frozen=True)
class Representation:
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class RepresentationCache:
    """The last GET answers (200) by ETag, served again without running their route.

    An ETag names one representation exactly: the data versions of the scopes the route
    reads, the reporting date, the caller's key, the path, the query and the format. So an
    answer stored under it stays right for as long as a request computes the same ETag; a
    write bumps a version, the new ETag misses, and the route runs again. Authentication,
    the rate limit and the ETag itself are computed for every request as before (the cache
    is consulted by :func:`conditional`, after them). A pure ASGI middleware, LRU, bounded in
    entries and bytes; bodies above ``max_body`` are not kept.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str = "/api/v1",
        max_entries: int = 512,
        max_bytes: int = 64 * 2**20,
        max_body: int = 4 * 2**20,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_body = max_body
        self._entries: OrderedDict[str, Representation] = OrderedDict()
        self._bytes = 0

    def get(self, etag: str) -> Representation | None:
        entry = self._entries.get(etag)
        if entry is not None:
            self._entries.move_to_end(etag)
        return entry

    def put(self, etag: str, entry: Representation) -> None:
        old = self._entries.pop(etag, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._entries[etag] = entry
        self._bytes += len(entry.body)
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)

    def __len__(self) -> int:
        return len(self._entries)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        if await self._answer_early(scope, send):
            return
        scope[_CACHE] = self
        start: Message | None = None
        body = bytearray()
        replaced = False

        async def capture(message: Message) -> None:
            nonlocal start, replaced
            if message["type"] == "http.response.start":
                hit: Representation | None = scope.get(_HIT)
                if hit is not None and message["status"] == 304:
                    fresh = [(k, v) for k, v in message["headers"] if k.lower() in _VALIDATORS]
                    replaced = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [*hit.headers, *fresh],
                        }
                    )
                    await send({"type": "http.response.body", "body": hit.body})
                    return
                if message["status"] == 200 and scope.get(_STORE):
                    start = message
            elif message["type"] == "http.response.body":
                if replaced:
                    return  # the 304's empty body: the cached one went out instead
                if start is not None:
                    body.extend(message.get("body", b""))
                    if len(body) > self.max_body:
                        start = None
                        body.clear()
                    elif not message.get("more_body", False):
                        kept = tuple(
                            (k, v) for k, v in start["headers"] if k.lower() not in _VALIDATORS
                        )
                        self.put(scope[_STORE], Representation(kept, bytes(body)))
            await send(message)

        await self.app(scope, receive, capture)

    async def _answer_early(self, scope: Scope, send: Send) -> bool:
        """The polling fast path, before routing and dependency resolution (most of the cost
        of a poll): a client whose copy is current gets its 304, and a repeated GET whose
        answer is in memory gets it, with the same checks as the route's. The key goes
        through the routes' own check (:func:`app.http.deps.check_key`), read afresh or as
        :class:`KnownKeys` holds it until the next commit, and is charged to its rate limit
        only when there is an answer to give; the tag is computed by :func:`validators`.
        Anything unusual (no tag to match or nothing kept, an unknown key, a throttled key,
        versions not yet exact) takes the full path, where the route answers it.
        """
        headers = Headers(scope=scope)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        app = scope.get("app")
        if scheme.lower() != "bearer" or not token or app is None:
            return False
        known: KnownKeys | None = getattr(app.state, "known_keys", None)
        key_hash = auth_service.hash_key(token)
        # Read before the database: a commit after this moves it on, and the entry stored
        # below under the older generation is never used.
        generation = known.watch.generation() if known is not None else None
        held = known.get(key_hash, generation) if known is not None else None
        if (
            held is None
            and not headers.get("if-none-match")
            and (generation is None or not self._entries)
        ):
            # No tag to match, and no kept answer to serve that the route would not find as
            # cheaply (what is read here for one can be kept only under a known generation).
            return False
        answer: _Early | None = None

        def go_on(check: KeyCheck) -> bool:
            nonlocal answer
            if not check.exact:
                return False
            if held is None and known is not None:
                known.put(key_hash, generation, check.principal, check.versions)
            answer = self._early(app, scope, headers, check)
            return answer is not None

        try:
            checked = await check_key(app=app, token=token, kept=held, go_on=go_on)
        except QuotaGapError:
            return False  # the route answers the 401 or the 429
        if checked is None or answer is None:
            return False
        scope[ROUTE_HINT] = _prefix_of(scope["path"], "304" if answer.kept is None else "200, kept")
        fresh = [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        if answer.kept is None:
            await send({"type": "http.response.start", "status": 304, "headers": fresh})
            await send({"type": "http.response.body", "body": b""})
        else:
            start = [*answer.kept.headers, *fresh]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": answer.kept.body})
        return True

    def _early(self, app: Any, scope: Scope, headers: Headers, check: KeyCheck) -> _Early | None:
        """The fast path's answer to a key that may read, if it has one: a 304 when the
        client's tag is current, else the kept answer under the tag; ``None`` otherwise."""
        max_age = _cached_max_age(app, check.versions)
        if max_age is None:
            return None
        etag, validator_headers, _ = validators(
            app=app,
            settings=app.state.settings,
            versions=check.versions,
            key_id=check.principal.key_id,
            scoped=check.principal.rep_ids is not None,
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            accept=headers.get("accept", ""),
            max_age=max_age,
        )
        if_none_match = headers.get("if-none-match")
        if if_none_match is not None and _matches(if_none_match, etag):
            return _Early(None, validator_headers)
        kept = self.get(etag)
        return _Early(kept, validator_headers) if kept is not None else None


@dataclass(frozen=True)
class _Early:
    """What the fast path sends: the kept answer (``None``: a 304) and fresh validators."""

    kept: Representation | None
    headers: dict[str, str]


class KnownKeys:
    """Keys (their principal) and data versions the fast path read, kept while nothing has
    been committed since (:class:`app.core.watch.CommitWatch`), for at most ``max_age`` seconds.

    Any commit anywhere (a revocation, a sync, a compute, a new target) moves the watch's
    generation on and every entry is read again, so a current poll costs no database round
    trip and a change is seen by the next request (on PostgreSQL, once its notification has
    arrived: milliseconds). A key's expiry is checked on every use. ``max_age`` bounds what
    a write the watch cannot see (made around the service, with psql) can leave stale.
    """

    def __init__(self, watch: CommitWatch, *, max_age: float = 1.0, max_entries: int = 4096):
        self.watch = watch
        self.max_age = max_age
        self.max_entries = max_entries
        self._entries: dict[str, tuple[int, float, Principal, Versions]] = {}

    def get(self, key_hash: str, generation: int | None) -> tuple[Principal, Versions] | None:
        entry = self._entries.get(key_hash)
        if entry is None or generation is None or entry[0] != generation:
            return None
        if time.monotonic() - entry[1] > self.max_age:
            return None
        return entry[2], entry[3]

    def put(
        self, key_hash: str, generation: int | None, principal: Principal, versions: Versions
    ) -> None:
        if generation is None:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # a bound, not a policy: entries are cheap to read again
        self._entries[key_hash] = (generation, time.monotonic(), principal, versions)


# Read by app.http.telemetry: the route family a fast 304 answered for (no route ran).
ROUTE_HINT = "qg.route_hint"


def _prefix_of(path: str, answer: str) -> str:
    rest = path.removeprefix("/api/v1")
    for prefix in _PREFIXES:
        if rest == prefix or rest.startswith(prefix + "/"):
            return f"/api/v1{prefix}/... ({answer})"
    return f"/api/v1/... ({answer})"


def cache_control(scopes: tuple[str, ...], max_age: int) -> str:
    # Job progress and deliveries change by the second: always revalidate those.
    if "ops" in scopes and "results" not in scopes:
        return "private, no-cache"
    return f"private, max-age={max_age}, must-revalidate"
