"""enrolments: invitations of professionals without an account (single-use link mailed to
their MSSanté address) and self-enrolment requests by RPPS (code mailed to that address)

Revision ID: 0140
Revises: 0120
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0140"
down_revision = "0120"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("rpps", sa.String(11), nullable=False),
        sa.Column("national_id", sa.String(20), nullable=True),
        sa.Column("mailbox", sa.String(255), nullable=True),
        sa.Column("dossier_id", sa.String(32), sa.ForeignKey("dossiers.id"), nullable=True),
        sa.Column("role", sa.String(12), nullable=True),
        sa.Column("coordinator", sa.Boolean(), nullable=False),
        sa.Column("invited_by", sa.String(255), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_enrolments_rpps", "enrolments", ["rpps", "created_at"])
    op.create_index("ix_enrolments_dossier_id", "enrolments", ["dossier_id"])
    op.create_index("ix_enrolments_source", "enrolments", ["source"])


def downgrade() -> None:
    op.drop_table("enrolments")
