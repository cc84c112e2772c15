"""dossier rooms, room sync outbox, room activity

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:29:44.123261
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dossier_rooms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("audience", sa.String(length=20), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("creation_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("room_id"),
    )
    with op.batch_alter_table("dossier_rooms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dossier_rooms_dossier_id"), ["dossier_id"], unique=False
        )

    op.create_table(
        "room_activity",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("room_activity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_room_activity_dossier_id"), ["dossier_id"], unique=False
        )

    op.create_table(
        "room_sync_jobs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("room_sync_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_room_sync_jobs_dossier_id"), ["dossier_id"], unique=False
        )
        batch_op.create_index("ix_room_sync_pending", ["done_at", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("room_sync_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_room_sync_pending")
        batch_op.drop_index(batch_op.f("ix_room_sync_jobs_dossier_id"))

    op.drop_table("room_sync_jobs")
    with op.batch_alter_table("room_activity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_activity_dossier_id"))

    op.drop_table("room_activity")
    with op.batch_alter_table("dossier_rooms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dossier_rooms_dossier_id"))

    op.drop_table("dossier_rooms")
