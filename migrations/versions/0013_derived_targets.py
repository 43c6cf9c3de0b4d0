"""performance rows say whether their target was derived from monthly targets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

A quarter or fiscal year without its own target gets one derived from its months' targets
(analytics/targets.py); ``target_derived_from`` lists the periods it was derived from, null
for a target set on the period. The new column enters every row's digest, so the first
compute after the upgrade rewrites the rows of its scope once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ALTER TABLE ADD COLUMN (nullable, no default): SQLite need not copy the table.
    op.add_column("performance_rows", sa.Column("target_derived_from", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("performance_rows") as batch_op:
        batch_op.drop_column("target_derived_from")
