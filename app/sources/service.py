from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core import netguard, secrets
from app.core.config import Settings
from app.core.exceptions import ConflictError, InvalidInputError, NotFoundError
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from app.sources.schemas import SourceCreate, SourceRead, SourceUpdate, SyncRunRead
from connectors import registry

# Credentials that say where requests go (Salesforce's instance and login URLs, Pipedrive's
# token endpoint and API domain): checked like base_url, since the stored tokens follow them.
URL_CREDENTIALS = ("instance_url", "login_url", "token_url", "api_domain")
# What a token answer may move: where the account lives now (Salesforce, Pipedrive).
URL_TOKEN_FIELDS = ("instance_url", "api_domain")
ALLOW_SETTING = "QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS"


def get(*, session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFoundError(f"source {source_id} not found")
    return source


def crm_source(*, session: Session, source_id: int) -> Source:
    """A source a sync can read: a CRM connection, not a CSV import."""
    source = get(session=session, source_id=source_id)
    if source.kind not in registry.CRM_KINDS:
        raise ConflictError(
            f"source {source_id} is a {source.kind} import, not a CRM connection: "
            "import the file again instead"
        )
    return source


# -- where a source may send its credentials


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without user info, path or query (safe to show)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL the guard would pass: nothing worth showing
        return ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def check_destinations(
    *, settings: Settings, base_url: str | None, credentials: Mapping[str, Any]
) -> None:
    """Refuse (422 naming the field) a base URL or credential URL on a loopback, private,
    link-local or otherwise non-public address, unless QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS.

    Names are not resolved here (DNS may not know them yet): the sync checks them again,
    resolved, before its first request (:func:`request_guard`)."""
    urls = {"base_url": base_url} if base_url is not None else {}
    for key in URL_CREDENTIALS:
        value = credentials.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInputError(
                f"credentials.{key} must be a URL",
                details=[{"field": f"credentials.{key}", "message": "not a URL"}],
            )
        urls[f"credentials.{key}"] = value
    for field, url in urls.items():
        netguard.check_url(
            url,
            allow_private=settings.source_allow_private_destinations,
            resolve=False,
            field=field,
            what=field,
            setting=ALLOW_SETTING,
        )


def request_guard(settings: Settings) -> Callable[[str], None]:
    """For one sync: refuses each request (token refreshes too) to a URL whose host resolves
    to a non-public address, before it is sent. Each origin is resolved once per sync; a name
    that does not resolve is refused (its addresses cannot be checked)."""
    checked: set[str] = set()

    def guard(url: str) -> None:
        where = origin(url)
        if where in checked:
            return
        netguard.check_url(
            url,
            allow_private=settings.source_allow_private_destinations,
            resolve=True,
            field="base_url",
            what=f"CRM URL {where}",
            setting=ALLOW_SETTING,
        )
        checked.add(where)

    return guard


def refused_token_urls(
    payload: Mapping[str, Any], guard: Callable[[str], None]
) -> dict[str, netguard.DestinationRefused]:
    """The URL fields of an OAuth token answer that ``guard`` refuses, by field: where the CRM
    says the account lives now is checked before it is stored (and used by the next sync)."""
    refused: dict[str, netguard.DestinationRefused] = {}
    for key in URL_TOKEN_FIELDS:
        if payload.get(key):
            try:
                guard(str(payload[key]))
            except netguard.DestinationRefused as exc:
                refused[key] = exc
    return refused


def _current_url(settings: Settings, source: Source) -> str | None:
    """Where the source's requests go now: its base URL, else the credentials' instance or API
    domain, else the CRM's default host."""
    if source.base_url:
        return source.base_url
    credentials = secrets.decrypt(settings, source.credentials_encrypted) or {}
    for key in URL_TOKEN_FIELDS:
        if credentials.get(key):
            return str(credentials[key])
    if source.kind not in registry.CRM_KINDS:
        return None
    default: str | None = registry.module(source.kind).DEFAULT_BASE_URL
    return default


# -- sources


def create(*, session: Session, settings: Settings, source_in: SourceCreate) -> Source:
    check_destinations(
        settings=settings, base_url=source_in.base_url, credentials=source_in.credentials
    )
    if session.scalar(select(Source.id).where(Source.name == source_in.name)) is not None:
        raise ConflictError(
            f"a source named {source_in.name!r} exists",
            details=[{"field": "name", "message": "already used"}],
        )
    if source_in.kind == "salesforce" and not (
        source_in.base_url or source_in.credentials.get("instance_url")
    ):
        raise InvalidInputError(
            "a Salesforce source needs its instance URL",
            details=[{"field": "base_url", "message": "set base_url or credentials.instance_url"}],
        )
    source = Source(
        kind=source_in.kind,
        name=source_in.name,
        base_url=source_in.base_url,
        credentials_encrypted=secrets.encrypt(settings, source_in.credentials),
        schedule=source_in.schedule.model_dump(exclude_none=True),
        config=source_in.config,
        is_enabled=source_in.is_enabled,
    )
    session.add(source)
    session.flush()
    return source


def update(
    *, session: Session, settings: Settings, source: Source, source_in: SourceUpdate
) -> Source:
    data = source_in.model_dump(exclude_unset=True)
    check_destinations(
        settings=settings,
        base_url=data.get("base_url"),
        credentials=data.get("credentials") or {},
    )
    new_url = data.get("base_url")
    if new_url and not data.get("credentials"):
        current = _current_url(settings, source)
        if current is None or origin(current) != origin(new_url):
            # The stored tokens were issued for the old host: they must not follow a new one.
            raise InvalidInputError(
                "a new host for a source needs its credentials again",
                details=[
                    {
                        "field": "credentials",
                        "message": f"required when base_url moves to {origin(new_url)}",
                    }
                ],
            )
    if "credentials" in data and data["credentials"] is not None:
        source.credentials_encrypted = secrets.encrypt(settings, data.pop("credentials"))
    if "schedule" in data and data["schedule"] is not None:
        data["schedule"] = {k: v for k, v in data["schedule"].items() if v is not None}
    for field, value in data.items():
        if value is not None:
            setattr(source, field, value)
    session.flush()
    return source


def query() -> Select[Source]:
    return select(Source).where(Source.kind != "csv").order_by(Source.id)


def to_read(session: Session, source: Source) -> SourceRead:
    """A source with its sync health; credentials are never part of it."""
    last = session.scalar(
        select(SyncRun).where(SyncRun.source_id == source.id).order_by(SyncRun.id.desc())
    )
    cursors = {
        c.stream: c.value
        for c in session.scalars(select(SyncCursor).where(SyncCursor.source_id == source.id))
    }
    return SourceRead(
        id=source.id,
        kind=source.kind,
        name=source.name,
        base_url=source.base_url,
        schedule=source.schedule,
        config=source.config,
        is_enabled=source.is_enabled,
        has_credentials=bool(source.credentials_encrypted),
        last_success_at=source.last_success_at,
        last_error=source.last_error,
        consecutive_failures=source.consecutive_failures,
        last_run=SyncRunRead.model_validate(last) if last else None,
        cursors=cursors,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )


def quarantine_query(*, source_id: int, object_type: str | None) -> Select[QuarantinedRecord]:
    stmt = select(QuarantinedRecord).where(QuarantinedRecord.source_id == source_id)
    if object_type:
        stmt = stmt.where(QuarantinedRecord.object_type == object_type)
    return stmt


def runs_query(*, source_id: int) -> Select[SyncRun]:
    return select(SyncRun).where(SyncRun.source_id == source_id)
