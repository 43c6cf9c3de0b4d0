"""What becomes of an alert after it was raised: its figures are followed, and it is resolved
once its condition clears.

Every evaluation judges again the alerts of each enabled rule in the periods that rule looks
at (the current period and ``alert_lookback_periods`` before it, as when raising):

* condition still holds, material figures changed (:data:`MATERIAL`): the alert stays
  ``open``, ``current`` takes the new figures, ``revision`` and ``updated_at`` move, and a
  ``<event_type>.updated`` event goes out with the previous and current figures;
* condition still holds, only other figures moved (the expected-to-date of a running period
  grows every day): ``current`` is refreshed quietly, no event;
* condition no longer holds: ``resolved`` with the figures at resolution
  (``condition_cleared``; ``period_closed`` for an at-risk alert whose period ended, which is
  no good news), or with the last figures known when the rule found nothing about the
  subject any more (``subject_gone``: the target was deleted, the rep deactivated, the deal
  is no longer won); a ``<event_type>.resolved`` event goes out;
* a resolved alert whose condition holds again is reopened with an ``.updated`` event
  (``reopened`` true).

Alerts of periods outside the window, of disabled or deleted rules, and of subjects outside
a rule's team scope are not judged, so they stay as they were. The figures an alert was
raised on (``data``, ``summary``) are never rewritten.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.alerts import events
from app.alerts.models import Alert, AlertRule

# The figures whose change is news, per rule type. Others (pace, elapsed share, percentile,
# coaching focus) move without the situation changing.
MATERIAL: dict[str, tuple[str, ...]] = {
    "target.missed": ("actual", "target", "gap", "attainment"),
    "target.at_risk": ("actual", "target", "gap", "attainment"),
    "rep.persistent_underperformance": (
        "actual",
        "target",
        "gap",
        "attainment",
        "consecutive_misses",
    ),
    "team.wide_gap": ("actual", "target", "attainment", "reps_with_target", "reps_below_target"),
    "deal.big_win": ("amount",),
    "crm.hygiene": ("stale_deals", "past_due_deals"),
    "rep.coaching_stalled": ("focus_driver", "stalled_periods"),
}
# Two computations of the same figure may differ in the last bits; a cent on a million does
# not make an update.
REL_TOL = 1e-6
ABS_TOL = 1e-6

Key = tuple[str, int, str | None, str | None]


@dataclass
class Candidate:
    """A subject a rule looked at. ``holds``: the rule's condition is met (raise the alert or
    keep it open); false: a subject with an open alert whose condition no longer holds, with
    the figures it is resolved with."""

    event_type: str
    subject_type: str
    subject_id: int
    rep_id: int | None
    team_id: int | None
    metric: str | None
    period: str | None
    status: str | None
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    holds: bool = True
    # Why a candidate that does not hold resolves its alert (see ResolvedReason).
    resolution: str = "condition_cleared"


@dataclass
class Changes:
    created: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    events: list[events.Event] = field(default_factory=list)


def key(alert: Alert) -> Key:
    """What a rule's candidate is matched on: (subject type, subject, metric, period)."""
    return (alert.subject_type, alert.subject_id, alert.metric, alert.period)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(a == b)


def changed(event_type: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The material figures that differ between two sets of an alert's figures."""
    return [f for f in MATERIAL.get(event_type, ()) if not _same(before.get(f), after.get(f))]


def figures(rule: AlertRule, c: Candidate) -> dict[str, Any]:
    """An alert's figures as stored: the rule's name and the subject's status with the
    candidate's numbers (``data`` at raising holds the same, with the status in a column)."""
    return {"rule_name": rule.name, "status": c.status, **c.data}


def raised_figures(alert: Alert) -> dict[str, Any]:
    """The figures as last judged: ``current``, or those the alert was raised on."""
    return alert.current or {"status": alert.status, **alert.data}


def new_alert(event_id: str, rule: AlertRule, c: Candidate, version: int) -> Alert:
    return Alert(
        event_id=event_id,
        event_type=c.event_type,
        rule_id=rule.id,
        subject_type=c.subject_type,
        subject_id=c.subject_id,
        rep_id=c.rep_id,
        team_id=c.team_id,
        metric=c.metric,
        period=c.period,
        status=c.status,
        summary=c.summary,
        data={"rule_name": rule.name, **c.data},
        snapshot_id=version,
        state="open",
        current=figures(rule, c),
        current_summary=c.summary,
        current_snapshot_id=version,
    )


def _follow(
    out: Changes,
    alert: Alert,
    now_figures: dict[str, Any],
    summary: str,
    version: int,
    now: datetime,
) -> None:
    """An alert whose condition holds: an update when material figures changed or it had
    been resolved, else a quiet refresh of its current figures."""
    previous = raised_figures(alert)
    diff = changed(alert.event_type, previous, now_figures)
    reopened = alert.state == "resolved"
    if not diff and not reopened:
        if alert.current != now_figures or alert.current_summary != summary:
            alert.current, alert.current_summary = now_figures, summary
            alert.current_snapshot_id = version
        return
    alert.state, alert.resolved_at, alert.resolved_reason = "open", None, None
    alert.current, alert.current_summary, alert.current_snapshot_id = now_figures, summary, version
    alert.revision += 1
    alert.updated_at = now
    out.updated.append(alert)
    out.events.append(
        events.change_event(alert, "updated", previous=previous, changed=diff, reopened=reopened)
    )


def _resolve(
    out: Changes,
    alert: Alert,
    now_figures: dict[str, Any] | None,
    summary: str | None,
    reason: str,
    version: int,
    now: datetime,
) -> None:
    previous = raised_figures(alert)
    alert.state, alert.resolved_at, alert.resolved_reason = "resolved", now, reason
    if now_figures is None:
        alert.current = previous  # the last figures known
        diff: list[str] = []
    else:
        alert.current, alert.current_summary = now_figures, summary
        alert.current_snapshot_id = version
        diff = changed(alert.event_type, previous, now_figures)
    alert.revision += 1
    out.resolved.append(alert)
    out.events.append(events.change_event(alert, "resolved", previous=previous, changed=diff))


def reconcile(
    out: Changes,
    *,
    rule: AlertRule,
    found: Mapping[str, Candidate],
    prior: Sequence[Alert],
    scope: Collection[int] | None,
    version: int,
    now: datetime,
) -> None:
    """Raise, update, reopen or resolve one rule's alerts from its candidates (by event id).

    ``prior``: the rule's alerts in the periods it looked at. Of those, an open one about a
    team in the rule's ``scope`` (None: every team) that no candidate names is resolved:
    the rule found nothing about its subject any more.
    """
    by_id = {a.event_id: a for a in prior}
    for eid, c in found.items():
        alert = by_id.get(eid)
        if alert is None:
            if c.holds:
                out.created.append(new_alert(eid, rule, c, version))
        elif c.holds:
            _follow(out, alert, figures(rule, c), c.summary, version, now)
        elif alert.state == "open":
            _resolve(out, alert, figures(rule, c), c.summary, c.resolution, version, now)
    for alert in prior:
        in_scope = scope is None or alert.team_id in scope
        if alert.event_id not in found and alert.state == "open" and in_scope:
            _resolve(out, alert, None, None, "subject_gone", version, now)
