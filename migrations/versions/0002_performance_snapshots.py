"""performance snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.core.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dirty_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("marked_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_dirty_days")),
    )
    op.create_table(
        "metric_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column(
            "values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_rows")),
    )
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metric_rows_period", ["period", "subject_type", "valid_to"], unique=False
        )
        batch_op.create_index(
            "ix_metric_rows_subject", ["subject_type", "subject_id", "period_kind"], unique=False
        )

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=50), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("computed_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "periods",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_computed_at"), ["computed_at"], unique=False)

    op.create_table(
        "coaching_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("coaching_focus", sa.String(length=30), nullable=True),
        sa.Column("focus_reason", sa.Text(), nullable=True),
        sa.Column(
            "drivers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rep_id"], ["reps.id"], name=op.f("fk_coaching_rows_rep_id_reps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coaching_rows")),
    )
    with op.batch_alter_table("coaching_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coaching_rows_rep_period", ["rep_id", "period", "valid_to"], unique=False
        )

    op.create_table(
        "performance_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=50), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actual", sa.Double(), nullable=True),
        sa.Column("target", sa.Double(), nullable=True),
        sa.Column("target_full", sa.Double(), nullable=True),
        sa.Column("proration_factor", sa.Double(), nullable=True),
        sa.Column("ramp_factor", sa.Double(), nullable=True),
        sa.Column("gap", sa.Double(), nullable=True),
        sa.Column("attainment", sa.Double(), nullable=True),
        sa.Column("elapsed_fraction", sa.Double(), nullable=True),
        sa.Column("pacing", sa.String(length=20), nullable=True),
        sa.Column("expected_to_date", sa.Double(), nullable=True),
        sa.Column("pace_gap", sa.Double(), nullable=True),
        sa.Column("projected", sa.Double(), nullable=True),
        sa.Column("open_pipeline", sa.Double(), nullable=True),
        sa.Column("weighted_pipeline", sa.Double(), nullable=True),
        sa.Column("projected_with_pipeline", sa.Double(), nullable=True),
        sa.Column("coverage", sa.Double(), nullable=True),
        sa.Column("coverage_needed", sa.Double(), nullable=True),
        sa.Column("consecutive_misses", sa.Integer(), nullable=False),
        sa.Column("target_note", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rep_id"],
            ["reps.id"],
            name=op.f("fk_performance_rows_rep_id_reps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_performance_rows_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performance_rows")),
    )
    with op.batch_alter_table("performance_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_performance_rows_period_metric", ["period", "metric", "valid_to"], unique=False
        )
        batch_op.create_index(
            "ix_performance_rows_rep_id", ["rep_id", "metric", "period_start"], unique=False
        )
        batch_op.create_index("ix_performance_rows_team_id", ["team_id", "period"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("performance_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_performance_rows_team_id")
        batch_op.drop_index("ix_performance_rows_rep_id")
        batch_op.drop_index("ix_performance_rows_period_metric")

    op.drop_table("performance_rows")
    with op.batch_alter_table("coaching_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_coaching_rows_rep_period")

    op.drop_table("coaching_rows")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_computed_at"))

    op.drop_table("snapshots")
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_rows_subject")
        batch_op.drop_index("ix_metric_rows_period")

    op.drop_table("metric_rows")
    op.drop_table("dirty_days")
