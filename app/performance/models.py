"""Computed results, kept as versioned snapshots.

Every compute writes one ``Snapshot`` (its id is the version) and, in the same transaction,
only the result rows that changed: a changed row's old version gets ``valid_to = version`` and
the new one ``valid_from = version``. The rows visible at version V are those with
``valid_from <= V`` and (``valid_to`` is null or ``> V``), so a reader sees one snapshot or the
next, never a mix, past versions stay answerable (``?as_of=``), and an incremental recompute
writes only what it changed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, utcnow


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="complete")
    kind: Mapped[str] = mapped_column(String(20))  # full | incremental
    trigger: Mapped[str] = mapped_column(String(50), default="manual")
    as_of: Mapped[date]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    periods: Mapped[list[str]] = mapped_column(default=list)
    rows_written: Mapped[int] = mapped_column(default=0)
    duration_ms: Mapped[int] = mapped_column(default=0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


def _head_index(name: str) -> Index:
    """The head rows' ids and digests by period, all a compute's comparison reads (so it
    reads the index alone, not the table's rows)."""
    head = text("valid_to IS NULL")
    return Index(
        name,
        "period",
        "key_digest",
        "digest",
        sqlite_where=head,
        postgresql_where=head,
        postgresql_include=["id"],
    )


# The columns a versioned row keeps for its versioning, not its figures.
VERSIONING_COLUMNS = frozenset({"id", "valid_from", "valid_to", "key_digest", "digest"})


class _Versioned:
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int | None] = mapped_column(Integer)
    # Hashes (``versioning.digests``) of the row's key columns and of its key and content: a
    # recompute matches rows on the first and compares the second, not the stored values, to
    # find the rows that changed. Null never matches (the row is rewritten).
    key_digest: Mapped[int | None] = mapped_column(BigInteger)
    digest: Mapped[int | None] = mapped_column(BigInteger)


class PerformanceRow(_Versioned, Base):
    """One (rep or team, metric, period) against its target, with pacing and status."""

    __tablename__ = "performance_rows"
    __table_args__ = (
        Index("ix_performance_rows_period_metric", "period", "metric", "valid_to"),
        Index("ix_performance_rows_rep_id", "rep_id", "metric", "period_start"),
        Index("ix_performance_rows_team_id", "team_id", "period"),
        _head_index("ix_performance_rows_head"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(10))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    target_id: Mapped[int | None]
    metric: Mapped[str] = mapped_column(String(50))
    period: Mapped[str] = mapped_column(String(10))
    period_kind: Mapped[str] = mapped_column(String(10))
    period_start: Mapped[date]
    period_end: Mapped[date]
    status: Mapped[str] = mapped_column(String(20))
    actual: Mapped[float | None]
    target: Mapped[float | None]
    target_full: Mapped[float | None]
    proration_factor: Mapped[float | None]
    ramp_factor: Mapped[float | None]
    gap: Mapped[float | None]
    attainment: Mapped[float | None]
    elapsed_fraction: Mapped[float | None]
    pacing: Mapped[str | None] = mapped_column(String(20))
    expected_to_date: Mapped[float | None]
    pace_gap: Mapped[float | None]
    projected: Mapped[float | None]
    open_pipeline: Mapped[float | None]
    weighted_pipeline: Mapped[float | None]
    projected_with_pipeline: Mapped[float | None]
    coverage: Mapped[float | None]
    coverage_needed: Mapped[float | None]
    consecutive_misses: Mapped[int] = mapped_column(default=0)
    target_note: Mapped[str | None] = mapped_column(Text)
    # Null for a target set on the period; for one derived from the targets of its months
    # (analytics.targets), their periods joined by commas. target_id is then null.
    target_derived_from: Mapped[str | None] = mapped_column(Text)
    # The projection shown by default and its method (run_rate | pipeline), and each
    # method's backtested error on the subject's own history (app.performance.projections).
    projection_method: Mapped[str | None] = mapped_column(String(20))
    projection: Mapped[float | None]
    run_rate_mape: Mapped[float | None]
    run_rate_bias: Mapped[float | None]
    run_rate_periods: Mapped[int | None]
    pipeline_mape: Mapped[float | None]
    pipeline_bias: Mapped[float | None]
    pipeline_periods: Mapped[int | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MetricRow(_Versioned, Base):
    """Every metric of one subject in one period, target or not (leaderboards, trends)."""

    __tablename__ = "metric_rows"
    __table_args__ = (
        Index("ix_metric_rows_period", "period", "subject_type", "valid_to"),
        Index("ix_metric_rows_subject", "subject_type", "subject_id", "period_kind"),
        _head_index("ix_metric_rows_head"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[int]
    period: Mapped[str] = mapped_column(String(10))
    period_kind: Mapped[str] = mapped_column(String(10))
    period_start: Mapped[date]
    values: Mapped[dict[str, Any]] = mapped_column()


class CoachingRow(_Versioned, Base):
    """The funnel drivers behind a rep's result in a period, and the skill to coach."""

    __tablename__ = "coaching_rows"
    __table_args__ = (
        Index("ix_coaching_rows_rep_period", "rep_id", "period", "valid_to"),
        _head_index("ix_coaching_rows_head"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(10))
    period_kind: Mapped[str] = mapped_column(String(10))
    coaching_focus: Mapped[str | None] = mapped_column(String(30))
    focus_reason: Mapped[str | None] = mapped_column(Text)
    drivers: Mapped[dict[str, Any]] = mapped_column()


class ReportedDriverRow(_Versioned, Base):
    """A figure the drivers report against the team but never judge
    (``analytics.drivers.REPORTED``: the pipeline value created) of a rep in a period; its
    keys are read into the rep's coaching row (``{driver}_value``...).

    Kept out of the coaching row because it moves far more often: every amount edit of any
    deal, open or lost, moves the rep's figure over a year of windows and the leave-one-out
    team median of each peer, so storing it there rewrote four times as many coaching rows
    in an incremental compute (docs/metrics.md, "Incremental recompute")."""

    __tablename__ = "reported_driver_rows"
    __table_args__ = (
        Index("ix_reported_driver_rows_rep_period", "rep_id", "period", "valid_to"),
        _head_index("ix_reported_driver_rows_head"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(10))
    period_kind: Mapped[str] = mapped_column(String(10))
    driver: Mapped[str] = mapped_column(String(30))
    value: Mapped[float | None]
    team_median: Mapped[float | None]
    trailing: Mapped[float | None]


ANY_REP = 0


class DirtyDay(Base):
    """A UTC day whose records of one kind (``deal`` or ``activity``) and one rep changed
    since the last compute, written with the records.

    Incremental recompute turns these into the periods (of every kind) to recompute, and
    reads again only the records of the dirty (kind, rep, month) cells, taking every other
    monthly figure from the stored rows. Both the old and the new dates and reps of a changed
    record are marked, so a deal whose close date moved from October to November makes both
    months dirty. ``rep_id`` is :data:`ANY_REP` (0) when the rep is not known: every rep's
    figures of that day are then read again.
    """

    __tablename__ = "dirty_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    rep_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class DealChange(Base):
    """A deal inserted or changed since the last compute, with the figures-deciding fields it
    had then (its *before* image; all null, ``existed`` false, for a deal new since).

    Written with the deal by ``app.pipeline.ingest``; the first change after a compute writes
    the row and later ones leave it alone, so ``before`` is what the stored figures counted. An
    incremental compute subtracts the before image's contribution from the stored monthly
    figures and adds the deal's current one, instead of reading every deal of the months
    the change touched; it deletes the rows it applied, in its own transaction.
    """

    __tablename__ = "deal_changes"

    source_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    existed: Mapped[bool] = mapped_column(Boolean)
    deal_id: Mapped[int | None]
    rep_id: Mapped[int | None]
    amount: Mapped[float | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime | None]
    close_date: Mapped[date | None]
    closed_at: Mapped[datetime | None]
    is_deleted: Mapped[bool | None] = mapped_column(Boolean)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComputeState(Base):
    """What the last snapshot was computed from, for the next incremental compute: every
    rep's monthly figures (``rep_month``), the won deals' sales cycles (``won``) and the open
    deals due (``due``), each as the columns of a ``numpy.savez`` archive. Written in the
    snapshot's own transaction, so it is never ahead of or behind the snapshot it names; not
    served (the API reads the result rows)."""

    __tablename__ = "compute_state"

    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    snapshot_id: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)


@event.listens_for(ComputeState.__table__, "after_create")
def _store_state_uncompressed(target: Any, connection: Connection, **_: Any) -> None:
    """PostgreSQL would try to compress each archive (megabytes of numbers, rewritten by every
    compute) before storing it out of line: ten times the cost of storing it as it is.
    Migration 0010 does the same for existing databases."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "ALTER TABLE compute_state ALTER COLUMN data SET STORAGE EXTERNAL"
        )
