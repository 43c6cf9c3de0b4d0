"""Every ORM model, imported once so ``Base.metadata`` is complete (Alembic, tests)."""

from app.activities.models import Activity
from app.alerts.models import Alert, AlertRule
from app.audit.models import AuditEntry
from app.auth.models import ApiKey
from app.db import Base
from app.deals.models import Deal, DealStageChange
from app.jobs.models import Job, Lease
from app.performance.models import (
    CoachingRow,
    ComputeState,
    DealChange,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    Snapshot,
)
from app.reps.models import Rep, RepIdentity, TeamMembership
from app.sources.models import QuarantinedRecord, Source, SyncCursor, SyncRun
from app.targets.models import Target
from app.teams.models import Team
from app.versions import DataVersion
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
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
