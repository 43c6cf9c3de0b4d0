"""dirty days per kind and rep, row digests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("coaching_rows", "metric_rows", "performance_rows")
_old = sa.table(
    "dirty_days",
    sa.column("day", sa.Date()),
    sa.column("marked_at", app.core.base.UTCDateTime(timezone=True)),
)


def _dirty_days(*extra: sa.Column[object]) -> sa.Table:
    return op.create_table(
        "dirty_days",
        sa.Column("day", sa.Date(), nullable=False),
        *extra,
        sa.Column("marked_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", *(c.name for c in extra), name=op.f("pk_dirty_days")),
    )


def upgrade() -> None:
    for name in VERSIONED:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("digest", sa.BigInteger(), nullable=True))
    # Days marked before: every kind and every rep of them is dirty.
    conn = op.get_bind()
    old = conn.execute(sa.select(_old.c.day, _old.c.marked_at)).all()
    op.drop_table("dirty_days")
    table = _dirty_days(
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("rep_id", sa.Integer(), autoincrement=False, nullable=False),
    )
    rows = [
        {"day": day, "kind": kind, "rep_id": 0, "marked_at": marked_at}
        for day, marked_at in old
        for kind in ("deal", "activity")
    ]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    conn = op.get_bind()
    old = conn.execute(sa.select(_old.c.day).distinct()).all()
    op.drop_table("dirty_days")
    table = _dirty_days()
    if old:
        now = app.core.base.utcnow()
        op.bulk_insert(table, [{"day": day, "marked_at": now} for (day,) in old])
    for name in reversed(VERSIONED):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("digest")
