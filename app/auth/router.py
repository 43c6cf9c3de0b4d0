from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from app.auth import service
from app.auth.models import ApiKey
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from app.core.base import utcnow
from app.core.exceptions import ConflictError, NotFoundError
from app.core.pagination import CursorParam, LimitParam, paginate
from app.http.deps import AdminKey, SessionDep
from app.reps import service as reps_service

router = APIRouter()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(key_in: ApiKeyCreate, session: SessionDep, _: AdminKey) -> ApiKeyCreated:
    """Create an API key. The key is in this answer only; Quota Gap keeps just its hash."""
    if key_in.rep_id is not None:
        reps_service.get(session=session, rep_id=key_in.rep_id)  # 404, not a broken reference
    # Not model_dump(): it would serialise expires_at to a string.
    key, token = service.create(
        session=session,
        role=key_in.role,
        name=key_in.name,
        rep_id=key_in.rep_id,
        expires_at=key_in.expires_at,
    )
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=token)


@router.get("", response_model=ApiKeyPage)
def list_keys(
    session: SessionDep, _: AdminKey, cursor: CursorParam = None, limit: LimitParam = 100
) -> ApiKeyPage:
    """API keys with role, scope, expiry and revocation, oldest first, a page at a time;
    never the keys themselves."""
    keys, next_cursor = paginate(session, select(ApiKey), ApiKey.id, cursor=cursor, limit=limit)
    return ApiKeyPage(items=[ApiKeyRead.model_validate(k) for k in keys], next_cursor=next_cursor)


@router.delete("/{key_id}", response_model=ApiKeyRead)
def revoke_key(key_id: int, session: SessionDep, _: AdminKey) -> ApiKeyRead:
    """Revoke a key at once; requests with it get 401 from now on."""
    return ApiKeyRead.model_validate(service.revoke(session=session, key_id=key_id))


@router.post("/{key_id}/rotate", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def rotate_key(
    key_id: int,
    session: SessionDep,
    _: AdminKey,
    grace_hours: Annotated[
        float,
        Query(ge=0, le=168, description="Keep the old key working this long (0: revoke now)."),
    ] = 0,
) -> ApiKeyCreated:
    """Replace a key with a new one of the same role, scope, name and expiry. The new key is
    in this answer only; the old one is revoked now or expires after ``grace_hours``."""
    old = session.get(ApiKey, key_id)
    if old is None:
        raise NotFoundError(f"API key {key_id} not found")
    if old.revoked_at is not None:
        raise ConflictError(f"API key {key_id} is revoked; create a new one instead")
    key, token = service.create(
        session=session, role=old.role, name=old.name, rep_id=old.rep_id, expires_at=old.expires_at
    )
    if grace_hours:
        until = utcnow() + timedelta(hours=grace_hours)
        old.expires_at = min(old.expires_at, until) if old.expires_at else until
    else:
        service.revoke(session=session, key_id=key_id)
    session.flush()
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=token)
