"""The dependencies every router shares, as ``Annotated`` aliases.

FastAPI runs a plain ``def`` dependency in the thread pool, one hop per dependency, and a
polling GET answered 304 did little else than hop. So the dependencies here are ``async``:
settings and role checks run on the event loop, and so does the one short statement that
authenticates the key and reads the data versions (:func:`app.auth.service.identify`), when
a pooled connection is free (a checkout that could wait goes to a thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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
from app.core.config import Settings
from app.core.exceptions import AuthenticationError, PermissionDeniedError
from app.core.versions import unrecorded


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


def _identify(session: Session, token: str) -> Principal:
    principal, versions = auth_service.identify(session=session, token=token)
    session.info[VERSIONS] = versions
    session.info[INEXACT] = unrecorded(session)
    return principal


async def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's key, read afresh on every request (revocation applies at once).

    Always in a read transaction: a write request's own session begins by taking the write
    lock on SQLite (``BEGIN IMMEDIATE``, see :mod:`app.core.db`), and the key must not wait for
    it, on the event loop least of all (every request, ``/health`` too, would wait with it).
    A write request reads its key in a short session of its own; its write transaction then
    begins in the route, off the loop."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing API key: send Authorization: Bearer <key>")
    token = credentials.credentials
    if request.method in ("GET", "HEAD"):
        return await _identify_in(session, token)
    reader: Session = request.app.state.read_sessionmaker()
    try:
        return await _identify_in(reader, token)
    finally:
        with anyio.CancelScope(shield=True):
            _finish(reader, False)  # a read: ending it is one short statement


async def _identify_in(session: Session, token: str) -> Principal:
    if _connection_at_hand(session):
        return _identify(session, token)
    principal: Principal = await run_in_threadpool(_identify, session, token)
    return principal


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
