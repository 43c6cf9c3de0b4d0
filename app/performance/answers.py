"""What the read endpoints share besides their figures: which snapshot they read
(``computed_on``) and, when they have nothing to show, why.

Two dates, two names. ``as_of`` is "as if today were": a compute's reporting date (the CLI's
``--as-of``, the body of ``POST /api/v1/compute``, ``SnapshotRead.as_of``). ``computed_on`` is
"the figures as computed on that date": a read endpoint answers from the latest snapshot
computed on or before it. A read endpoint never takes ``as_of`` (it answers the
unknown-parameter 422, with a hint: :data:`app.http.params.HINTS`).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.exceptions import NotFoundError
from app.performance import versioning
from app.performance.models import Snapshot

NO_SNAPSHOT = (
    "no snapshot yet: nothing has been computed (POST /api/v1/compute, or wait for the next "
    "scheduled compute)"
)


def require_snapshot(session: Session, computed_on: date) -> None:
    """404 (NotFoundError, with why) when no snapshot was computed on or before ``computed_on``;
    the ``computed_on`` query parameter of the read endpoints checks it (the router)."""
    if versioning.current_version(session, computed_on=computed_on) is not None:
        return
    first = session.scalar(
        select(func.min(Snapshot.computed_at)).where(Snapshot.status == "complete")
    )
    why = (
        "no snapshot has been computed yet"
        if first is None
        else f"the first snapshot kept was computed on {first.date().isoformat()}"
    )
    raise NotFoundError(
        f"no figures computed on or before {computed_on.isoformat()}: {why}",
        details=[{"field": "computed_on", "message": why}],
    )


def empty_reason(version: int | None, nothing: str) -> str:
    """Why an answer holds no figures: no snapshot at all, or ``nothing`` (what the snapshot
    has no rows for, said by the caller) in snapshot ``version``."""
    if version is None:
        return NO_SNAPSHOT
    return f"{nothing} in snapshot {version}"
