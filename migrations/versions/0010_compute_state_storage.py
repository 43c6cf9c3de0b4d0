"""compute state stored uncompressed on PostgreSQL

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

Each compute rewrites megabytes of numbers there; PostgreSQL's attempt to compress them cost
ten times as much as storing them. Values already stored keep their form until rewritten.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _storage(kind: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE compute_state ALTER COLUMN data SET STORAGE {kind}")


def upgrade() -> None:
    _storage("EXTERNAL")


def downgrade() -> None:
    _storage("EXTENDED")
