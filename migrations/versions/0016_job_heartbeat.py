"""jobs say when their process last said it is alive

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08

A running job's leases are short and renewed by a heartbeat; the orphan sweep fails a job
whose heartbeat stopped, and the jobs API shows it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("heartbeat_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_at")
