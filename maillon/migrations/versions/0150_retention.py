"""retention and purge: a legal hold on dossiers, the rooms the homeserver must purge and
the files sent in them

Revision ID: 0150
Revises: 0130
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0150"
down_revision = "0130"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite included): rebuilding ``dossiers`` would break the keys
    # that point to it.
    op.add_column(
        "dossiers",
        sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "room_purges",
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("room_id"),
    )
    op.create_index(op.f("ix_room_purges_dossier_id"), "room_purges", ["dossier_id"])
    op.create_index(op.f("ix_room_purges_done_at"), "room_purges", ["done_at"])
    op.create_table(
        "room_media",
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("mxc", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "mxc"),
    )


def downgrade() -> None:
    op.drop_table("room_media")
    op.drop_index(op.f("ix_room_purges_done_at"), table_name="room_purges")
    op.drop_index(op.f("ix_room_purges_dossier_id"), table_name="room_purges")
    op.drop_table("room_purges")
    op.drop_column("dossiers", "legal_hold")  # SQLite 3.35+: no rebuild of the table
