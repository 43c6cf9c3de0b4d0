"""the figures the drivers report but never judge get narrow versioned rows of their own

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

The pipeline value created moves with every amount edit of any deal; kept in the coaching
rows it rewrote a team's wide rows over a year of windows for each edit. The coaching rows
stop storing it (and the ratios, derived when read), so their digests change: the first
compute after the upgrade rewrites the coaching rows of its scope once. Coaching rows of
earlier versions keep the figure in their ``drivers``, where the reader still finds it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "reported_driver_rows"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("driver", sa.String(length=30), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("team_median", sa.Double(), nullable=True),
        sa.Column("trailing", sa.Double(), nullable=True),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("key_digest", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rep_id"], ["reps.id"], name=op.f(f"fk_{_TABLE}_rep_id_reps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{_TABLE}")),
    )
    op.create_index(
        f"ix_{_TABLE}_rep_period", _TABLE, ["rep_id", "period", "valid_to"], unique=False
    )
    op.create_index(
        f"ix_{_TABLE}_head",
        _TABLE,
        ["period", "key_digest", "digest"],
        unique=False,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
        postgresql_include=["id"],
    )


def downgrade() -> None:
    op.drop_index(f"ix_{_TABLE}_head", table_name=_TABLE)
    op.drop_index(f"ix_{_TABLE}_rep_period", table_name=_TABLE)
    op.drop_table(_TABLE)
