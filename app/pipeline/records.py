"""Every record of the service, in one place: each ORM model imported once, so
``Base.metadata`` is complete (Alembic, tests), and the listeners that keep derived records
consistent on every write (:mod:`app.performance.marks`: the periods an org or target change
can move; :mod:`app.reps.memberships`: a rep's team spans).

Open databases through :func:`open_engine`: the listeners are global ``Session`` events
registered when their modules are imported, so an engine opened from here can never write a
target without marking what it moves, whichever entry point (API, CLI, worker, test) made it.
"""

from typing import Any

from sqlalchemy import Engine

from app.activities.models import Activity
from app.alerts.models import Alert, AlertRule
from app.audit.models import AuditEntry
from app.auth.models import ApiKey
from app.core.base import Base
from app.core.db import make_engine
from app.core.versions import DataVersion
from app.deals.models import Deal, DealStageChange
from app.performance import marks
from app.performance.models import (
    CoachingRow,
    ComputeState,
    DealChange,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    Snapshot,
)
from app.pipeline.jobs.models import Job, Lease
from app.reps import memberships
from app.reps.models import Rep, RepIdentity, TeamMembership
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from app.targets.models import Target
from app.teams.models import Team
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

# Imported for their listeners (global Session events), not for a name.
LISTENERS = (marks, memberships)


def open_engine(url: str, *, busy_timeout_ms: int = 30_000, **kwargs: Any) -> Engine:
    """An engine on ``url`` (:func:`app.core.db.make_engine`) with every model mapped and
    every consistency listener installed (:data:`LISTENERS`)."""
    return make_engine(url, busy_timeout_ms=busy_timeout_ms, **kwargs)


__all__ = [
    "LISTENERS",
    "Activity",
    "Alert",
    "AlertRule",
    "ApiKey",
    "AuditEntry",
    "Base",
    "CoachingRow",
    "ComputeState",
    "DataVersion",
    "Deal",
    "DealChange",
    "DealStageChange",
    "DeliveryAttempt",
    "DirtyDay",
    "Job",
    "Lease",
    "MetricRow",
    "PerformanceRow",
    "QuarantinedRecord",
    "Rep",
    "RepIdentity",
    "Snapshot",
    "Source",
    "SyncCursor",
    "SyncRun",
    "Target",
    "Team",
    "TeamMembership",
    "WebhookDelivery",
    "WebhookEndpoint",
]
