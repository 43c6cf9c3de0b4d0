"""deal changes, compute state, head indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

No state is written here: the first compute after the upgrade reads the records, as with no
snapshot, and writes it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compute_state",
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_compute_state")),
    )
    op.create_table(
        "deal_changes",
        sa.Column("source_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("existed", sa.Boolean(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("rep_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Double(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("closed_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=True),
        sa.Column("marked_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "external_id", name=op.f("pk_deal_changes")),
    )
    with op.batch_alter_table("coaching_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coaching_rows_head",
            ["period", "rep_id", "digest"],
            unique=False,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metric_rows_head",
            ["period", "subject_type", "subject_id", "digest"],
            unique=False,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    with op.batch_alter_table("performance_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_performance_rows_head",
            ["period", "subject_type", "rep_id", "team_id", "metric", "digest"],
            unique=False,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("performance_rows", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_performance_rows_head",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_metric_rows_head",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    with op.batch_alter_table("coaching_rows", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_coaching_rows_head",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    op.drop_table("deal_changes")
    op.drop_table("compute_state")
