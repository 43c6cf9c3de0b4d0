"""Which events an endpoint receives: exact event types, or patterns over the alert events.

An entry of an endpoint's ``event_types`` is an event type (``target.missed``,
``target.missed.resolved``, ``alert.delivery_exhausted``) or a pattern with ``*`` standing for
any text, dots included: ``*`` (every alert event), ``*.resolved`` (every resolution),
``target.missed.*`` (what happens to missed-target alerts after they were raised). Patterns
cover the alert events only; the service's own events (a test ping, a delivery given up on)
go to endpoints that name them, so a catch-all receiver is not sent operations noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from app.alerts.models import CHANGE_EVENTS, EVENT_TYPES, RULE_EVENTS

ALERT_EVENTS = frozenset(RULE_EVENTS + CHANGE_EVENTS)


def is_pattern(entry: str) -> bool:
    return "*" in entry


def check(entries: Iterable[str]) -> list[str]:
    """The entries, sorted and deduplicated; ValueError naming those that match nothing."""
    entries = set(entries)
    unknown = sorted(
        e
        for e in entries
        if e not in EVENT_TYPES
        and not (is_pattern(e) and any(fnmatchcase(t, e) for t in ALERT_EVENTS))
    )
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    return sorted(entries)


def wants(entries: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``entries`` receives ``event_type``."""
    entries = list(entries)
    if event_type in entries:
        return True
    return event_type in ALERT_EVENTS and any(
        is_pattern(e) and fnmatchcase(event_type, e) for e in entries
    )
