"""Cheap polling: ``ETag``/``Last-Modified`` from data versions, 304 without doing the work.

A GET's ``ETag`` hashes the versions (:mod:`app.versions`) of the scopes its route reads, the
caller's key (a manager sees other rows than an admin), the path, the query and the negotiated
format. A request whose ``If-None-Match`` (or ``If-Modified-Since``) matches is answered 304 by
a dependency that runs before the route: nothing is recomputed, queried or serialised.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.deps import CurrentKey, SessionDep, SettingsDep
from app.exceptions import NotModified
from app.exports import wants_csv
from app.versions import SCOPES, read_versions

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


def scopes_for(path: str) -> tuple[str, ...]:
    rest = path.removeprefix("/api/v1")
    for prefix in sorted(ROUTE_SCOPES, key=len, reverse=True):
        if rest == prefix or rest.startswith(prefix + "/"):
            return ROUTE_SCOPES[prefix]
    return SCOPES


def _matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)


def conditional(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentKey,
) -> None:
    """Set the validators of a GET, or answer 304 if the client's copy is current."""
    if request.method not in ("GET", "HEAD"):
        return
    scopes = scopes_for(request.url.path)
    versions = read_versions(session)
    stamp = ",".join(f"{s}:{versions.get(s, (0, None))[0]}" for s in scopes)
    negotiated = (
        "csv" if wants_csv(request.url.query, request.headers.get("accept", "")) else "json"
    )
    digest = hashlib.blake2b(
        f"{stamp}|{principal.key_id}|{request.url.path}|{request.url.query}|{negotiated}".encode(),
        digest_size=12,
    ).hexdigest()
    etag = f'"{digest}"'
    changed = [versions[s][1] for s in scopes if s in versions]
    last_modified = max(changed).replace(microsecond=0) if changed else None
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control(scopes, _max_age(request, session, settings, versions)),
        "Vary": "Authorization, Cookie, Accept",
    }
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
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
    response.headers.update(headers)


def _max_age(
    request: Request,
    session: Session,
    settings: Settings,
    versions: dict[str, tuple[int, datetime]],
) -> int:
    """``QG_CACHE_MAX_AGE_SECONDS``, or less when a source syncs more often than that: a
    client need not ask again before the next scheduled sync could have changed anything."""
    config_version = versions.get("config", (0, None))[0]
    cached = getattr(request.app.state, "cache_max_age", None)
    if cached is not None and cached[0] == config_version:
        return int(cached[1])
    from app.scheduler import trigger_for
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


def cache_control(scopes: tuple[str, ...], max_age: int) -> str:
    # Job progress and deliveries change by the second: always revalidate those.
    if "ops" in scopes and "results" not in scopes:
        return "private, no-cache"
    return f"private, max-age={max_age}, must-revalidate"
