"""Alert rules (configuration) and the alerts they raised (read-only history)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from app.alerts.models import Alert, AlertRule
from app.alerts.schemas import AlertRuleCreate, AlertRuleUpdate, check_params
from app.auth.service import Principal
from app.core.exceptions import InvalidInputError, NotFoundError
from app.teams import service as teams_service


def create_rule(*, session: Session, rule_in: AlertRuleCreate) -> AlertRule:
    teams_service.check_exist(session=session, team_ids=rule_in.team_ids)
    rule = AlertRule(**rule_in.model_dump())
    session.add(rule)
    session.flush()
    return rule


DEFAULT_RULES: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("Missed target", "target.missed", {}),
    ("Behind pace", "target.at_risk", {}),
    ("Three misses in a row", "rep.persistent_underperformance", {}),
    ("Most of a team below target", "team.wide_gap", {}),
    ("Big win", "deal.big_win", {}),
    ("Stale open deals", "crm.hygiene", {}),
    ("Coaching focus not improving", "rep.coaching_stalled", {}),
)


def default_rules(*, session: Session) -> list[AlertRule]:
    """One rule of each type with default thresholds, unless rules exist (the demo)."""
    if session.scalar(select(AlertRule.id).limit(1)) is not None:
        return []
    rules = [
        AlertRule(name=name, event_type=event_type, params=check_params(event_type, params))
        for name, event_type, params in DEFAULT_RULES
    ]
    session.add_all(rules)
    session.flush()
    return rules


def get_rule(*, session: Session, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFoundError(f"alert rule {rule_id} not found")
    return rule


def update_rule(*, session: Session, rule: AlertRule, rule_in: AlertRuleUpdate) -> AlertRule:
    values = {k: v for k, v in rule_in.model_dump(exclude_unset=True).items() if v is not None}
    if "team_ids" in values:
        teams_service.check_exist(session=session, team_ids=values["team_ids"])
    if "params" in values:
        try:
            values["params"] = check_params(rule.event_type, values["params"])
        except ValueError as exc:
            raise InvalidInputError(
                str(exc), details=[{"field": "params", "message": str(exc)}]
            ) from exc
    for name, value in values.items():
        setattr(rule, name, value)
    session.flush()
    return rule


def rules_query(*, event_type: str | None) -> Select[AlertRule]:
    stmt = select(AlertRule)
    return stmt.where(AlertRule.event_type == event_type) if event_type else stmt


def alerts_query(
    *,
    principal: Principal,
    event_type: str | None = None,
    rule_id: int | None = None,
    rep_id: int | None = None,
    team_id: int | None = None,
    period: str | None = None,
    since: datetime | None = None,
    state: str | None = None,
) -> Select[Alert]:
    stmt = select(Alert)
    if principal.rep_ids is not None:
        # A manager sees alerts about their reps and teams, nothing company-wide.
        stmt = stmt.where(
            or_(
                Alert.rep_id.in_(principal.rep_ids),
                Alert.team_id.in_(principal.team_ids or frozenset()),
            )
        )
    for column, value in (
        (Alert.event_type, event_type),
        (Alert.rule_id, rule_id),
        (Alert.rep_id, rep_id),
        (Alert.team_id, team_id),
        (Alert.period, period),
        (Alert.state, state),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(Alert.created_at >= since)
    return stmt


def get_alert(*, session: Session, principal: Principal, alert_id: int) -> Alert:
    alert = session.scalar(alerts_query(principal=principal).where(Alert.id == alert_id))
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert
