"""coordination bot state: handled events, liaison-note threads, form dialogues

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_handled_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_bot_handled_events_handled_at", "bot_handled_events", ["handled_at"], unique=False
    )
    op.create_table(
        "bot_note_threads",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("note_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "bot_form_dialogues",
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("form_id", sa.String(length=100), nullable=False),
        sa.Column("thread_root", sa.String(length=255), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("answers", sa.LargeBinary(), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("bot_form_dialogues")
    op.drop_table("bot_note_threads")
    op.drop_index("ix_bot_handled_events_handled_at", table_name="bot_handled_events")
    op.drop_table("bot_handled_events")
