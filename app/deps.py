"""The dependencies every router shares, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Principal
from app.config import Settings
from app.exceptions import AuthenticationError, PermissionDeniedError


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed when the route returns without error."""
    readonly = request.method in ("GET", "HEAD")
    factory = request.app.state.read_sessionmaker if readonly else request.app.state.sessionmaker
    session: Session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the commit happens before the response is sent, so a failed commit is
# reported as an error instead of after a 2xx already went out.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `quotagap create-api-key` or `POST /api/v1/api-keys`.",
)


def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing API key: send Authorization: Bearer <key>")
    key = auth_service.authenticate(session=session, token=credentials.credentials)
    return auth_service.principal_for(session=session, key=key)


CurrentKey = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    def check(principal: CurrentKey) -> Principal:
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
