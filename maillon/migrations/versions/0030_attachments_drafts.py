"""documents attached to notes (sealed), drafts of pathway forms (sealed)

Revision ID: 0030
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("note_id", sa.String(length=32), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=255), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("note_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_note_attachments_dossier_id"), ["dossier_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_note_attachments_note_id"), ["note_id"], unique=False)
    op.create_table(
        "form_drafts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("form_id", sa.String(length=60), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answers", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dossier_id", "form_id", "author", name="uq_form_draft"),
    )
    with op.batch_alter_table("form_drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_form_drafts_dossier_id"), ["dossier_id"], unique=False)


def downgrade() -> None:
    op.drop_table("form_drafts")
    op.drop_table("note_attachments")
