"""The alerts stage of the pipeline: evaluate the rules on the latest snapshot and queue
the webhook messages about what changed, in one transaction (an alert and its deliveries
commit together or not at all; the webhook dispatcher sends them after)."""

from __future__ import annotations

import dataclasses
from datetime import date

from sqlalchemy.orm import Session

from app.alerts import evaluate as rules
from app.core.config import Settings
from app.webhooks import service as webhooks_service


def evaluate(*, session: Session, settings: Settings, today: date | None = None) -> rules.Result:
    """:func:`app.alerts.evaluate.evaluate`, then one pending delivery per message and
    subscribed endpoint (:func:`app.webhooks.service.enqueue`)."""
    found = rules.evaluate(session=session, settings=settings, today=today)
    deliveries = webhooks_service.enqueue(
        session=session, settings=settings, alerts=found.alerts, events=found.events
    )
    return dataclasses.replace(found, deliveries=deliveries)
