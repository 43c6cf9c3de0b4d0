"""data versions (ETags for polling)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import app.core.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES = ("results", "records", "config", "ops")


def upgrade() -> None:
    table = op.create_table(
        "data_versions",
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_data_versions")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(table, [{"scope": s, "version": 1, "changed_at": now} for s in SCOPES])


def downgrade() -> None:
    op.drop_table("data_versions")
