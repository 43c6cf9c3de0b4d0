"""team memberships, effective-dated

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A rep's team becomes a history of spans, so that a move does not rewrite the team figures of
the periods before it. Backfill: each rep in their current team since their start date (the
first span also covers what came before it, so the figures stored so far are unchanged).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team_memberships",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "rep_id", sa.Integer(), sa.ForeignKey("reps.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "team_id", sa.Integer(), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_team_memberships_rep_id", "team_memberships", ["rep_id"])
    op.create_index("ix_team_memberships_team_id", "team_memberships", ["team_id"])
    op.execute(
        "INSERT INTO team_memberships (rep_id, team_id, valid_from, valid_to, created_at) "
        "SELECT id, team_id, start_date, NULL, CURRENT_TIMESTAMP FROM reps "
        "WHERE team_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_team_memberships_team_id", table_name="team_memberships")
    op.drop_index("ix_team_memberships_rep_id", table_name="team_memberships")
    op.drop_table("team_memberships")
