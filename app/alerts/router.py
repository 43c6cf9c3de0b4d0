from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from app.alerts import service
from app.alerts.models import EVENT_TYPES, RULE_EVENTS, Alert, AlertRule
from app.alerts.schemas import (
    AlertPage,
    AlertRead,
    AlertRuleCreate,
    AlertRulePage,
    AlertRuleRead,
    AlertRuleUpdate,
    AlertState,
)
from app.core.pagination import CursorParam, LimitParam, paginate
from app.core.periods import parse
from app.core.schemas import Schema
from app.http.deps import RecordReaderKey, SessionDep, SettingsDep, TargetWriterKey

rules_router = APIRouter()
alerts_router = APIRouter()
if TYPE_CHECKING:
    EventType = str
    RuleEventType = str
else:
    # The catalogue in app.alerts.models as enums: an unknown value is a 422 listing them.
    EventType = Literal[EVENT_TYPES]
    RuleEventType = Literal[RULE_EVENTS]


@rules_router.post("", response_model=AlertRuleRead, status_code=status.HTTP_201_CREATED)
def create_rule(rule_in: AlertRuleCreate, session: SessionDep, _: TargetWriterKey) -> AlertRuleRead:
    """Add a rule; it is evaluated after every compute (scheduled or manual)."""
    return AlertRuleRead.model_validate(service.create_rule(session=session, rule_in=rule_in))


@rules_router.get("", response_model=AlertRulePage)
def list_rules(
    session: SessionDep,
    _: RecordReaderKey,
    event_type: RuleEventType | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> AlertRulePage:
    """Alert rules with their thresholds and scopes."""
    rows, next_cursor = paginate(
        session,
        service.rules_query(event_type=event_type),
        AlertRule.id,
        cursor=cursor,
        limit=limit,
    )
    return AlertRulePage(
        items=[AlertRuleRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@rules_router.get("/{rule_id}", response_model=AlertRuleRead)
def read_rule(rule_id: int, session: SessionDep, _: RecordReaderKey) -> AlertRuleRead:
    """One alert rule."""
    return AlertRuleRead.model_validate(service.get_rule(session=session, rule_id=rule_id))


@rules_router.patch("/{rule_id}", response_model=AlertRuleRead)
def update_rule(
    rule_id: int, rule_in: AlertRuleUpdate, session: SessionDep, _: TargetWriterKey
) -> AlertRuleRead:
    """Change a rule's name, thresholds, scopes or enabled flag; omitted fields stay."""
    rule = service.get_rule(session=session, rule_id=rule_id)
    return AlertRuleRead.model_validate(
        service.update_rule(session=session, rule=rule, rule_in=rule_in)
    )


@rules_router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: int, session: SessionDep, _: TargetWriterKey) -> Response:
    """Delete a rule. The alerts it raised stay (with ``rule_id`` cleared)."""
    session.delete(service.get_rule(session=session, rule_id=rule_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class EventTypes(Schema):
    items: list[str]


@alerts_router.get("/event-types", response_model=EventTypes)
def event_types(_: RecordReaderKey) -> EventTypes:
    """Every event type an alert (and a webhook delivery) can carry."""
    return EventTypes(items=list(EVENT_TYPES))


@alerts_router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    settings: SettingsDep,
    principal: RecordReaderKey,
    event_type: EventType | None = None,
    rule_id: int | None = None,
    rep_id: int | None = None,
    team_id: int | None = None,
    period: str | None = Query(None, description="2026-11, 2026-Q4, FY2026"),
    since: AwareDatetime | None = Query(
        None, description="Created at or after; with a UTC offset (2026-01-01T00:00:00Z)."
    ),
    state: AlertState | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> AlertPage:
    """Alerts raised, oldest first, each with its lifecycle (``state``: open or resolved, and
    its current figures); managers see only their own team tree."""
    stmt = service.alerts_query(
        principal=principal,
        event_type=event_type,
        rule_id=rule_id,
        rep_id=rep_id,
        team_id=team_id,
        # Stored by label: a label that does not parse is a 422, not an empty page.
        period=parse(period, settings.calendar).label if period else None,
        since=since,
        state=state,
    )
    rows, next_cursor = paginate(session, stmt, Alert.id, cursor=cursor, limit=limit)
    return AlertPage(items=[AlertRead.model_validate(a) for a in rows], next_cursor=next_cursor)


@alerts_router.get("/{alert_id}", response_model=AlertRead)
def read_alert(alert_id: int, session: SessionDep, principal: RecordReaderKey) -> AlertRead:
    """One alert with the numbers behind it and links to their sources."""
    return AlertRead.model_validate(
        service.get_alert(session=session, principal=principal, alert_id=alert_id)
    )
