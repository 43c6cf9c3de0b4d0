"""performance rows carry the projection shown by default and each method's measured error

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08

Each projection method (run rate, pipeline-weighted) is backtested on the subject's own
history (analytics/backtest.py): its MAPE, bias and the periods measured are stored on every
performance row with the method chosen by default and its figure. The new columns enter every
row's digest, so the first compute after the upgrade rewrites the rows of its scope once; it
also reads every record once, since the stored state lacks the new midpoint figures.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("projection_method", sa.String(length=20)),
    ("projection", sa.Double()),
    ("run_rate_mape", sa.Double()),
    ("run_rate_bias", sa.Double()),
    ("run_rate_periods", sa.Integer()),
    ("pipeline_mape", sa.Double()),
    ("pipeline_bias", sa.Double()),
    ("pipeline_periods", sa.Integer()),
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMNs (nullable, no default): SQLite need not copy the table.
    for name, type_ in _COLUMNS:
        op.add_column("performance_rows", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("performance_rows") as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
