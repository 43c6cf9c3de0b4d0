"""alert lifecycle: open or resolved, with the current figures beside the raised ones

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Alerts raised before this revision start ``open`` with no current figures; the next alert
evaluation that looks at their period fills them in (or resolves them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.core.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=20), server_default="open", nullable=False)
        )
        batch_op.add_column(sa.Column("current", JSON, nullable=True))
        batch_op.add_column(sa.Column("current_summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("current_snapshot_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("updated_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("resolved_reason", sa.String(length=30), nullable=True))
        batch_op.create_index("ix_alerts_state_period", ["state", "period"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_state_period")
        for column in (
            "resolved_reason",
            "resolved_at",
            "updated_at",
            "revision",
            "current_snapshot_id",
            "current_summary",
            "current",
            "state",
        ):
            batch_op.drop_column(column)
