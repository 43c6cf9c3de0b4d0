from __future__ import annotations

from fastapi import APIRouter, status

from app.auth import service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from app.deps import AdminKey, SessionDep

router = APIRouter()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(key_in: ApiKeyCreate, session: SessionDep, _: AdminKey) -> ApiKeyCreated:
    """Create an API key. The key is in this answer only; Quota Gap keeps just its hash."""
    key, token = service.create(session=session, **key_in.model_dump())
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=token)


@router.get("", response_model=ApiKeyPage)
def list_keys(session: SessionDep, _: AdminKey) -> ApiKeyPage:
    return ApiKeyPage(
        items=[ApiKeyRead.model_validate(k) for k in service.list_keys(session=session)]
    )


@router.delete("/{key_id}", response_model=ApiKeyRead)
def revoke_key(key_id: int, session: SessionDep, _: AdminKey) -> ApiKeyRead:
    """Revoke a key at once; requests with it get 401 from now on."""
    return ApiKeyRead.model_validate(service.revoke(session=session, key_id=key_id))
