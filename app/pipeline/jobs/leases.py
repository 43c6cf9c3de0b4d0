"""Named leases in the database: whoever holds an unexpired lease may act.

Used for the scheduler's leadership (exactly one active scheduler across processes and
replicas) and for "one sync per source at a time". A holder renews its lease well before it
expires; a process that dies simply stops renewing, and another takes over once the lease
has expired. Acquisition is one conditional UPDATE or one INSERT, so two processes racing for
a lease cannot both win, on SQLite or PostgreSQL.

A holder is ``host:pid``. One of *this* host whose process is gone (killed, crashed) is
provably dead, so its lease is taken at once rather than after its TTL: a CLI re-run after a
kill does not wait. (Hosts are told apart by name: containers sharing a hostname and not a
pid namespace would confuse this; give them distinct hostnames, as orchestrators do.)
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.pipeline.jobs.models import Lease


def holder_id() -> str:
    """This process, as other processes see it in the leases table."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_here(holder: str | None) -> bool:
    """Whether ``holder`` is a process of this host that no longer runs."""
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def acquire(session: Session, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew ``name`` for ``ttl``; False when another live holder's lease is valid."""
    now = utcnow()
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    current = session.scalar(select(Lease.holder).where(Lease.name == name))
    if current is not None and dead_here(current):
        taken = session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == current)
            .values(holder=holder, expires_at=now + ttl, acquired_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]
    if current is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl, acquired_at=now))
    except IntegrityError:
        return False  # someone else holds it (the row exists and is not expired)
    return True


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def held(session: Session, name: str) -> Lease | None:
    lease = session.get(Lease, name)
    return lease if lease is not None and lease.expires_at >= utcnow() else None
