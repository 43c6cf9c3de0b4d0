"""The messages about alerts: one when an alert is raised, one per later change
(``<event_type>.updated`` / ``.resolved``), each with a stable message id. Webhooks deliver
them (:mod:`app.webhooks.service`); the alerts lifecycle makes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.alerts.models import Alert
from app.core.base import utcnow


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """One message about an alert: its raising, or a change to it after."""

    alert: Alert
    type: str
    # The webhook-id: the alert's event_id when raised, one id per change after.
    message_id: str
    payload: dict[str, Any]


def _alert_fields(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "event_id": alert.event_id,
        "rule_id": alert.rule_id,
        "subject_type": alert.subject_type,
        "subject_id": alert.subject_id,
        "rep_id": alert.rep_id,
        "team_id": alert.team_id,
        "metric": alert.metric,
        "period": alert.period,
        "status": alert.status,
    }


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The Standard Webhooks envelope: ``type``, ``timestamp`` and the alert as ``data``."""
    return {
        "type": alert.event_type,
        "timestamp": iso(alert.created_at),
        "data": {**_alert_fields(alert), "summary": alert.summary, **alert.data},
    }


def raised(alert: Alert) -> Event:
    return Event(alert, alert.event_type, alert.event_id, alert_payload(alert))


def change_event(
    alert: Alert,
    change: str,
    *,
    previous: dict[str, Any],
    changed: list[str],
    reopened: bool = False,
) -> Event:
    """``<event_type>.updated`` or ``.resolved``, for an alert already changed.

    Its webhook-id is ``{event_id}_{change}_{revision}``: the same change of the same alert
    always has the same id (a retried evaluation cannot send it under another), and each
    revision has its own. ``previous`` and ``current`` are the figures before and after
    (``current`` is null when the subject is gone from the snapshot).
    """
    at = (alert.resolved_at if change == "resolved" else alert.updated_at) or utcnow()
    data: dict[str, Any] = {
        **_alert_fields(alert),
        "state": alert.state,
        "revision": alert.revision,
        "summary": alert.current_summary or alert.summary,
        "raised_summary": alert.summary,
        "raised_at": iso(alert.created_at),
        "changed": changed,
        "previous": previous,
        "current": None if alert.resolved_reason == "subject_gone" else alert.current,
    }
    if change == "updated":
        data.update(updated_at=iso(at), reopened=reopened)
    else:
        data.update(resolved_at=iso(at), resolved_reason=alert.resolved_reason)
    return Event(
        alert=alert,
        type=f"{alert.event_type}.{change}",
        message_id=f"{alert.event_id}_{change}_{alert.revision}",
        payload={"type": f"{alert.event_type}.{change}", "timestamp": iso(at), "data": data},
    )
