"""key digests on result rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

Rows written before have no key digest: the first compute whose scope covers them rewrites
them once (a null never matches), as with no stored digest.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEAD = sa.text("valid_to IS NULL")
# The head index's columns before this revision, after "period" and before "digest".
OLD_KEYS = {
    "performance_rows": ["subject_type", "rep_id", "team_id", "metric"],
    "metric_rows": ["subject_type", "subject_id"],
    "coaching_rows": ["rep_id"],
}


def upgrade() -> None:
    # Plain ALTER TABLE and CREATE INDEX (no batch): SQLite need not copy the tables.
    for table in OLD_KEYS:
        op.add_column(table, sa.Column("key_digest", sa.BigInteger(), nullable=True))
        op.drop_index(f"ix_{table}_head", table_name=table)
        op.create_index(
            f"ix_{table}_head",
            table,
            ["period", "key_digest", "digest"],
            sqlite_where=HEAD,
            postgresql_where=HEAD,
            postgresql_include=["id"],
        )


def downgrade() -> None:
    for table, keys in OLD_KEYS.items():
        op.drop_index(f"ix_{table}_head", table_name=table)
        op.create_index(
            f"ix_{table}_head",
            table,
            ["period", *keys, "digest"],
            sqlite_where=HEAD,
            postgresql_where=HEAD,
        )
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("key_digest")
