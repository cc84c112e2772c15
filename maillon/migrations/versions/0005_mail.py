"""mail relay spool: accepted mails, mail threads, outgoing mails

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("source_event_id", sa.String(length=255), nullable=False),
        sa.Column("thread_root_event_id", sa.String(length=255), nullable=True),
        sa.Column("message_id_hash", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("sealed_mail", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id_hash"),
        sa.UniqueConstraint("source_event_id"),
        sa.UniqueConstraint("token"),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_outbox_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "mail_spool",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("sealed_mail", sa.LargeBinary(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("parts_done", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dossier_id", "dedup_key", name="uq_mail_spool_dedup"),
        sa.UniqueConstraint("token"),
    )
    with op.batch_alter_table("mail_spool", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_spool_delivered_at"), ["delivered_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mail_spool_room_id"), ["room_id"], unique=False)

    op.create_table(
        "mail_threads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("message_id_hash", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("root_event_id", sa.String(length=255), nullable=False),
        sa.Column("sealed_meta", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("room_id", "message_id_hash", name="uq_mail_threads_message"),
    )
    with op.batch_alter_table("mail_threads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_threads_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mail_threads_root_event_id"), ["root_event_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_threads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_threads_root_event_id"))
        batch_op.drop_index(batch_op.f("ix_mail_threads_event_id"))

    op.drop_table("mail_threads")
    with op.batch_alter_table("mail_spool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_spool_room_id"))
        batch_op.drop_index(batch_op.f("ix_mail_spool_delivered_at"))

    op.drop_table("mail_spool")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_outbox_next_attempt_at"))

    op.drop_table("mail_outbox")
