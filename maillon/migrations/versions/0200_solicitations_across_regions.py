"""solicitations across regions: outgoing (a peer server's team address) and incoming
(a peer server's patient room, no dossier here)

Revision ID: 0200
Revises: 0151
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0200"
down_revision = "0151"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("solicitations") as batch:
        batch.alter_column("team_slug", existing_type=sa.String(length=40), nullable=True)
        batch.alter_column("dossier_id", existing_type=sa.String(length=32), nullable=True)
        batch.add_column(sa.Column("remote_team", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("room_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_solicitations_room_id", ["room_id"])


def downgrade() -> None:
    with op.batch_alter_table("solicitations") as batch:
        batch.drop_index("ix_solicitations_room_id")
        batch.drop_column("relayed_at")
        batch.drop_column("room_id")
        batch.drop_column("remote_team")
        batch.alter_column("dossier_id", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("team_slug", existing_type=sa.String(length=40), nullable=False)
