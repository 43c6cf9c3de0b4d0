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
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.exceptions import NotFoundError
from app.http.deps import SessionDep
from app.performance import versioning
from app.performance.models import Snapshot

NO_SNAPSHOT = (
    "no snapshot yet: nothing has been computed (POST /api/v1/compute, or wait for the next "
    "scheduled compute)"
)


def _require_snapshot(session: Session, computed_on: date) -> None:
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


async def computed_on_param(
    session: SessionDep,
    computed_on: Annotated[
        date | None,
        Query(
            description="Answer with the figures as computed on this date: the latest snapshot "
            "computed on or before it (default: the latest). 404 before the first snapshot."
        ),
    ] = None,
) -> date | None:
    """The ``computed_on`` query parameter, 404 when no snapshot was computed by then."""
    if computed_on is not None:
        await run_in_threadpool(_require_snapshot, session, computed_on)
    return computed_on


ComputedOn = Annotated[date | None, Depends(computed_on_param)]


def empty_reason(version: int | None, nothing: str) -> str:
    """Why an answer holds no figures: no snapshot at all, or ``nothing`` (what the snapshot
    has no rows for, said by the caller) in snapshot ``version``."""
    if version is None:
        return NO_SNAPSHOT
    return f"{nothing} in snapshot {version}"
