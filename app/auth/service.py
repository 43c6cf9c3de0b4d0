"""API keys: creation, lookup, revocation, and what each role may see."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, ApiKey
from app.core.base import utcnow
from app.core.exceptions import AuthenticationError, InvalidInputError, NotFoundError
from app.core.versions import DataVersion, Versions, read_versions
from app.reps import service as reps_service

KEY_PREFIX = "qg_"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    *,
    session: Session,
    role: str,
    name: str = "",
    rep_id: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the plain token is returned once and never stored."""
    if role not in ROLES:
        raise InvalidInputError(
            f"unknown role {role!r}",
            details=[{"field": "role", "message": f"one of {', '.join(ROLES)}"}],
        )
    if role == "manager" and rep_id is None:
        raise InvalidInputError(
            "a manager key belongs to the manager's rep record",
            details=[{"field": "rep_id", "message": "required for role manager"}],
        )
    if rep_id is not None:  # any role: a key must not point at nobody
        reps_service.get(session=session, rep_id=rep_id)
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name or f"{role} key",
        prefix=token[:10],
        key_hash=hash_key(token),
        role=role,
        rep_id=rep_id,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key, token


def authenticate(*, session: Session, token: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    now = utcnow()
    if key is None:
        raise AuthenticationError("invalid API key")
    if key.revoked_at is not None:
        raise AuthenticationError("API key revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationError("API key expired")
    return key


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(*, session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


@dataclass(frozen=True)
class Principal:
    """Who is calling, and (for a manager) which reps and teams they may see."""

    key_id: int
    role: str
    rep_id: int | None
    # None means "everything"; a manager sees their own team tree only.
    rep_ids: frozenset[int] | None
    team_ids: frozenset[int] | None
    # When the key stops working (None: never); checked again by whoever keeps a Principal.
    expires_at: datetime | None = None

    def can_see_rep(self, rep_id: int | None) -> bool:
        return self.rep_ids is None or rep_id in self.rep_ids

    def can_see_team(self, team_id: int | None) -> bool:
        return self.team_ids is None or team_id in self.team_ids


def principal_for(*, session: Session, key: ApiKey) -> Principal:
    return _principal(session, key.id, key.role, key.rep_id, key.expires_at)


def _principal(
    session: Session, key_id: int, role: str, rep_id: int | None, expires_at: datetime | None
) -> Principal:
    if role != "manager" or rep_id is None:
        return Principal(key_id, role, rep_id, None, None, expires_at)
    rep_ids, team_ids = reps_service.scope_of_manager(session=session, manager_id=rep_id)
    return Principal(key_id, role, rep_id, frozenset(rep_ids), frozenset(team_ids), expires_at)


_IDENTIFY = (
    select(
        DataVersion.scope,
        DataVersion.version,
        DataVersion.changed_at,
        ApiKey.id,
        ApiKey.role,
        ApiKey.rep_id,
        ApiKey.revoked_at,
        ApiKey.expires_at,
    )
    .select_from(DataVersion)
    .outerjoin(ApiKey, ApiKey.key_hash == bindparam("key_hash"))
)


def identify(*, session: Session, token: str) -> tuple[Principal, Versions]:
    """Authenticate a request's key and read the data versions in ONE statement.

    A request that gets here reads its key's row afresh (a revoked or expired key is refused
    at once; only the polling fast path keeps what this returned, and only until the next
    commit: :class:`app.http.caching.KnownKeys`), and a GET needs the data versions for its
    ETag anyway (:mod:`app.http.caching`); joining the two makes the check of a polling
    client one round trip.
    The versions are those of the request's own transaction, as a separate read would be.
    """
    # Core on the session's connection: the ORM adds nothing to eight plain columns.
    rows = session.connection().execute(_IDENTIFY, {"key_hash": hash_key(token)}).all()
    if not rows:  # no version rows (a database not migrated by Alembic): two reads
        key = authenticate(session=session, token=token)
        return principal_for(session=session, key=key), read_versions(session)
    _, _, _, key_id, role, rep_id, revoked_at, expires_at = rows[0]
    if key_id is None:
        raise AuthenticationError("invalid API key")
    if revoked_at is not None:
        raise AuthenticationError("API key revoked")
    if expires_at is not None and expires_at <= utcnow():
        raise AuthenticationError("API key expired")
    versions = {scope: (version, changed_at) for scope, version, changed_at, *_ in rows}
    return _principal(session, key_id, role, rep_id, expires_at), versions
