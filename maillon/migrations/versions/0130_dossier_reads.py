"""dossier reads: when each person last read a dossier's notes (unread urgent notes filter)

Revision ID: 0130
Revises: 0140
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0130"
down_revision = "0140"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dossier_reads",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.PrimaryKeyConstraint("user_id", "dossier_id"),
    )


def downgrade() -> None:
    op.drop_table("dossier_reads")
