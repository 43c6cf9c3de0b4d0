"""Factories that build valid rows with sensible defaults; tests override what matters."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from analytics.periods import parse_period
from app.activities.models import Activity
from app.alerts.models import AlertRule
from app.auth import service as auth_service
from app.core import secrets
from app.core.config import Settings
from app.deals.models import Deal
from app.performance.models import CoachingRow, Snapshot
from app.reps.models import Rep
from app.sources.models import Source
from app.targets.models import Target
from app.teams.models import Team
from app.webhooks import service as webhooks_service
from app.webhooks.models import WebhookEndpoint

_seq = itertools.count(1)


class Factory:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._source: Source | None = None

    def _add(self, obj: Any) -> Any:
        self.session.add(obj)
        self.session.flush()
        return obj

    def team(self, **kw: Any) -> Team:
        return self._add(Team(**{"name": f"Team {next(_seq)}", **kw}))

    def rep(self, **kw: Any) -> Rep:
        n = next(_seq)
        return self._add(Rep(**{"name": f"Rep {n}", "email": f"rep{n}@example.com", **kw}))

    def source(self, **kw: Any) -> Source:
        return self._add(Source(**{"kind": "csv", "name": f"source-{next(_seq)}", **kw}))

    def default_source(self) -> Source:
        if self._source is None:
            self._source = self.source()
        return self._source

    def deal(self, **kw: Any) -> Deal:
        n = next(_seq)
        defaults: dict[str, Any] = {
            "source_id": self.default_source().id,
            "external_id": f"D{n}",
            "amount": 1000.0,
            "currency": "USD",
            "status": "won",
            "stage": "Closed Won",
            "created_at": datetime(2026, 1, 5, tzinfo=UTC),
            "close_date": date(2026, 2, 1),
            "closed_at": datetime(2026, 2, 1, tzinfo=UTC),
        }
        return self._add(Deal(**{**defaults, **kw}))

    def won(self, rep: Rep, amount: float, day: date, **kw: Any) -> Deal:
        """A deal created on the 1st of ``day``'s month and won on ``day``."""
        return self.deal(
            rep_id=rep.id,
            amount=amount,
            created_at=datetime(day.year, day.month, 1, tzinfo=UTC),
            close_date=day,
            closed_at=datetime(day.year, day.month, day.day, tzinfo=UTC),
            **kw,
        )

    def activity(self, **kw: Any) -> Activity:
        n = next(_seq)
        defaults: dict[str, Any] = {
            "source_id": self.default_source().id,
            "external_id": f"A{n}",
            "type": "call",
            "occurred_at": datetime(2026, 2, 3, 10, tzinfo=UTC),
        }
        return self._add(Activity(**{**defaults, **kw}))

    def target(self, **kw: Any) -> Target:
        p = parse_period(kw.get("period", "2026-02"))
        defaults: dict[str, Any] = {
            "metric": "won_revenue",
            "period": p.label,
            "period_start": p.start,
            "period_end": p.end,
            "value": 10_000.0,
        }
        return self._add(Target(**{**defaults, **kw}))

    def key(self, role: str = "admin", rep_id: int | None = None, **kw: Any) -> dict[str, str]:
        """Authorization headers for a fresh key of that role."""
        _, token = auth_service.create(session=self.session, role=role, rep_id=rep_id, **kw)
        return {"Authorization": f"Bearer {token}"}

    def alert_rule(self, event_type: str = "target.missed", **kw: Any) -> AlertRule:
        return self._add(AlertRule(**{"name": event_type, "event_type": event_type, **kw}))

    def webhook(self, settings: Settings, url: str, **kw: Any) -> tuple[WebhookEndpoint, str]:
        """An endpoint (stored as the API stores it) and its signing secret."""
        secret = webhooks_service.new_secret()
        endpoint = self._add(
            WebhookEndpoint(
                **{
                    "url": url,
                    "event_types": ["*"],
                    "secret_encrypted": secrets.encrypt(settings, {"secret": secret}),
                    **kw,
                }
            )
        )
        return endpoint, secret

    def snapshot(self, as_of: date, **kw: Any) -> Snapshot:
        """A complete snapshot (version) to hang hand-written result rows on."""
        return self._add(Snapshot(**{"kind": "full", "as_of": as_of, **kw}))

    def coaching_row(
        self,
        rep: Rep,
        period: str,
        focus_driver: str | None,
        *,
        version: int,
        focus: str | None = None,
        **drivers: Any,
    ) -> CoachingRow:
        """A stored coaching row as a compute writes it: ``drivers`` are flat driver-table
        keys (``win_rate_vs_team=0.4``...); ``focus`` defaults to the driver's name. A ratio
        against the team is stored as what it divides (analytics.driver_ratios): the value
        over a team median of 1."""
        p = parse_period(period)
        for key in [k for k in drivers if k.endswith("_vs_team")]:
            driver = key.removesuffix("_vs_team")
            drivers[f"{driver}_value"], drivers[f"{driver}_team_median"] = drivers.pop(key), 1.0
        return self._add(
            CoachingRow(
                rep_id=rep.id,
                period=p.label,
                period_kind=p.kind,
                coaching_focus=(focus or focus_driver) if focus_driver else None,
                focus_reason=f"{focus_driver} below the team" if focus_driver else None,
                drivers={"focus_driver": focus_driver, **drivers},
                valid_from=version,
                valid_to=None,
            )
        )
