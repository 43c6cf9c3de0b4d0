"""The dependencies every router shares, as ``Annotated`` aliases.

FastAPI runs a plain ``def`` dependency in the thread pool, one hop per dependency, and a
polling GET answered 304 did little else than hop. So the dependencies here are ``async``:
settings and role checks run on the event loop, and so does the one short statement that
authenticates the key and reads the data versions (:func:`app.auth.service.identify`), when
a pooled connection is free (a checkout that could wait goes to a thread).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from starlette.concurrency import run_in_threadpool

from app.auth import service as auth_service
from app.auth.service import Principal
from app.core.base import utcnow
from app.core.config import Settings
from app.core.exceptions import AuthenticationError, PermissionDeniedError, RateLimitedError
from app.core.versions import Versions, unrecorded
from app.http.limits import limiter_of


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# The versions read with the key (app.auth.service.identify), for app.http.caching.conditional,
# and whether they are exact for this connection (app.core.versions.unrecorded).
VERSIONS = "qg_request_versions"
INEXACT = "qg_request_versions_inexact"


def _session_slots(app: FastAPI) -> anyio.Semaphore | None:
    """At most as many request sessions at once as the connection pool holds.

    A request holds its connection across several thread-pool hops (dependencies, route,
    commit). With more requests than connections, the thread pool could fill with requests
    blocked on the pool while the holders wait for a thread: every request then stalls until
    the pool's 30 s timeout. Waiting here, on the event loop, holds neither.
    """
    state = app.state
    slots: anyio.Semaphore | bool | None = getattr(state, "session_slots", False)
    if slots is False:
        pool = getattr(getattr(state, "engine", None), "pool", None)
        slots = None
        if isinstance(pool, QueuePool) and pool._max_overflow >= 0:
            slots = anyio.Semaphore(max(1, pool.size() + pool._max_overflow))
        state.session_slots = slots
    return slots if isinstance(slots, anyio.Semaphore) else None


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request, committed when the route returns without error."""
    readonly = request.method in ("GET", "HEAD")
    factory = request.app.state.read_sessionmaker if readonly else request.app.state.sessionmaker
    slots = _session_slots(request.app)
    if slots is not None:
        await slots.acquire()
    try:
        session: Session = factory()
        ok = False
        try:
            yield session
            ok = True
        finally:
            session.info.pop(VERSIONS, None)
            session.info.pop(INEXACT, None)
            with anyio.CancelScope(shield=True):
                if readonly:
                    # Ending a read transaction is one short statement: no thread hop.
                    _finish(session, ok)
                else:
                    await run_in_threadpool(_finish, session, ok)
    finally:
        if slots is not None:
            slots.release()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the commit happens before the response is sent, so a failed commit is
# reported as an error instead of after a 2xx already went out.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `quotagap create-api-key` or `POST /api/v1/api-keys`.",
)


@dataclass(frozen=True)
class KeyCheck:
    """A key that may go on: who it is, and the data versions read with it (exact: see
    :func:`app.core.versions.unrecorded`)."""

    principal: Principal
    versions: Versions
    exact: bool


async def check_key(
    *,
    app: Any,
    token: str,
    session: Session | None = None,
    kept: tuple[Principal, Versions] | None = None,
    go_on: Callable[[KeyCheck], bool] | None = None,
) -> KeyCheck | None:
    """Whether a key may read: the one place that decides it, for the routes
    (:func:`current_principal`) and the polling fast path (:mod:`app.http.caching`), in order:

    1. the key, read afresh with the data versions in one statement
       (:func:`app.auth.service.identify`, in ``session``, or in a read session of its own),
       or as the fast path ``kept`` it (:class:`app.http.caching.KnownKeys`, until the next
       commit: a revocation is one);
    2. revoked or expired: 401 (``identify`` refuses them; a kept key's expiry is checked
       again, since time moves without a commit);
    3. ``go_on``: the fast path goes on only with an answer to give (``None`` is returned,
       nothing spent), since a request it passes on is charged by the route;
    4. the key's rate limit (``QG_RATE_LIMIT_PER_MINUTE``): 429 once its tokens are spent.

    The role comes last, from the route (:func:`require_roles`): only the route knows which
    roles it allows. The fast path needs none: it answers a key only with a tag or an answer
    a route gave that same key (tags are keyed by key), and a key's role never changes.
    """
    if kept is not None:
        principal, versions = kept
        if principal.expires_at is not None and principal.expires_at <= utcnow():
            raise AuthenticationError("API key expired")
        check = KeyCheck(principal, versions, exact=True)
    elif session is not None:
        check = await _read_key(session, token)
    else:
        # A write request's own session begins with the write lock on SQLite (see
        # current_principal): its key is read in a short read session of its own.
        reader: Session = app.state.read_sessionmaker()
        try:
            check = await _read_key(reader, token)
        finally:
            with anyio.CancelScope(shield=True):
                _finish(reader, False)  # a read: ending it is one short statement
    if go_on is not None and not go_on(check):
        return None
    settings: Settings = app.state.settings
    if settings.rate_limit_per_minute > 0:
        wait = limiter_of(app).take(
            check.principal.key_id, settings.rate_limit_per_minute, settings.rate_limit_burst
        )
        if wait > 0:
            raise RateLimitedError(
                f"rate limit of {settings.rate_limit_per_minute:g} requests per minute "
                "for this API key exceeded",
                retry_after=math.ceil(wait),
            )
    return check


async def _read_key(session: Session, token: str) -> KeyCheck:
    if _connection_at_hand(session):
        return _identify(session, token)
    check: KeyCheck = await run_in_threadpool(_identify, session, token)
    return check


def _identify(session: Session, token: str) -> KeyCheck:
    principal, versions = auth_service.identify(session=session, token=token)
    return KeyCheck(principal, versions, exact=not unrecorded(session))


async def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's key, read afresh on every request (revocation applies at once), and
    charged to its rate limit (:func:`check_key`).

    Always in a read transaction: a write request's own session begins by taking the write
    lock on SQLite (``BEGIN IMMEDIATE``, see :mod:`app.core.db`), and the key must not wait for
    it, on the event loop least of all (every request, ``/health`` too, would wait with it).
    A write request reads its key in a short session of its own; its write transaction then
    begins in the route, off the loop."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing API key: send Authorization: Bearer <key>")
    readonly = request.method in ("GET", "HEAD")
    check = await check_key(
        app=request.app, token=credentials.credentials, session=session if readonly else None
    )
    assert check is not None  # no go_on: a key that may not go on raised
    if readonly:
        session.info[VERSIONS] = check.versions
        session.info[INEXACT] = not check.exact
    return check.principal


def _connection_at_hand(session: Session) -> bool:
    """Whether the session's first statement can run on the event loop without waiting.

    A thread hop costs more than the statement itself (one indexed row and the four version
    rows: tens of microseconds on SQLite, one round trip on PostgreSQL). The loop must never
    wait for the pool, though: a checkout that could wait goes to a thread.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return True  # bound to a connection (tests): there is no pool to wait for
    pool = bind.pool
    return isinstance(pool, QueuePool) and pool.checkedin() > 0


CurrentKey = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Any]:
    async def check(principal: CurrentKey) -> Principal:
        if principal.role not in roles:
            raise PermissionDeniedError(
                f"role {principal.role!r} may not do this (needs {' or '.join(roles)})"
            )
        return principal

    return check


# Who may do what (see README "Roles").
AdminKey = Annotated[Principal, Depends(require_roles("admin"))]
TargetWriterKey = Annotated[Principal, Depends(require_roles("admin", "analyst"))]
RecordReaderKey = Annotated[Principal, Depends(require_roles("admin", "analyst", "manager"))]
MetricsReaderKey = CurrentKey
