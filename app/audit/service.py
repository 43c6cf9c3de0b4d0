"""The audit log: every change to targets, sources, alert rules, webhooks and API keys.

Changes are captured from the ORM's unit of work (``after_flush``), so no write path can forget
to log; the entry is inserted on the flushing connection, in the same transaction as the
change, so a rolled-back change leaves no entry. The actor is what the request authenticated
(``bind_actor`` puts it on the session, called by :func:`app.http.api.record_actor`); work
outside a request (the CLI, the scheduler, a sync refreshing an OAuth token) is logged as
``system``.

Secrets never reach the log: encrypted columns and key hashes show only ``"<changed>"`` or
``"<set>"``; operational columns (last success, failure counts, timestamps) are left out, so
the log holds decisions, not heartbeats.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, event, insert, inspect, select
from sqlalchemy.orm import Session

from app.alerts.models import AlertRule
from app.audit.models import AuditEntry
from app.auth.models import ApiKey
from app.auth.service import Principal
from app.core.base import utcnow
from app.sources.models import Source
from app.targets.models import Target
from app.webhooks.models import WebhookEndpoint

SECRET = {"credentials_encrypted", "secret_encrypted", "key_hash"}
# Columns a model's own machinery updates (not a person's decision).
IGNORED = {
    "created_at",
    "updated_at",
    "last_success_at",
    "last_error",
    "consecutive_failures",
    "failing_since",
    "last_used_at",
}
AUDITED: dict[type, str] = {
    Target: "target",
    Source: "source",
    AlertRule: "alert_rule",
    WebhookEndpoint: "webhook",
    ApiKey: "api_key",
}
ACTOR = "qg_actor"


def bind_actor(session: Session, principal: Principal) -> None:
    session.info[ACTOR] = (f"key:{principal.key_id} ({principal.role})", principal.key_id)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _shown(column: str, value: Any) -> Any:
    if column in SECRET:
        return None if value is None else "<set>"
    return _plain(value)


def _state(obj: Any) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {
        c.key: _shown(c.key, getattr(obj, c.key))
        for c in mapper.column_attrs
        if c.key not in IGNORED
    }


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        if attr.key in IGNORED:
            continue
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old == new:
            continue
        if attr.key in SECRET:
            before[attr.key], after[attr.key] = "<set>", "<changed>"
        else:
            before[attr.key], after[attr.key] = _plain(old), _plain(new)
    return before, after


@event.listens_for(Session, "after_flush")
def _record(session: Session, _flush_context: Any) -> None:
    entries: list[dict[str, Any]] = []
    for action, objects in (
        ("create", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            entity = AUDITED.get(type(obj))
            if entity is None:
                continue
            if action == "create":
                before, after = None, _state(obj)
            elif action == "delete":
                before, after = _state(obj), None
            else:
                before, after = _changes(obj)
                if not after:
                    continue  # only ignored columns changed
            entries.append(
                {
                    "action": action,
                    "entity_type": entity,
                    "entity_id": obj.id,
                    "before": before,
                    "after": after,
                }
            )
    if not entries:
        return
    actor, key_id = session.info.get(ACTOR, ("system", None))
    now = utcnow()
    session.connection().execute(
        insert(AuditEntry),
        [{**e, "actor": actor, "actor_key_id": key_id, "at": now} for e in entries],
    )


def query(
    *,
    entity_type: str | None = None,
    entity_id: int | None = None,
    actor_key_id: int | None = None,
    since: datetime | None = None,
) -> Select[AuditEntry]:
    stmt = select(AuditEntry)
    for column, value in (
        (AuditEntry.entity_type, entity_type),
        (AuditEntry.entity_id, entity_id),
        (AuditEntry.actor_key_id, actor_key_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return stmt
