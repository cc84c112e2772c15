"""structure staff roles: member, manager (dashboards, extractions, administration of the
structure), referent (also receives the monthly report)

Revision ID: 0053
Revises: 0052
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0053"
down_revision = "0052"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("structure_staff") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=12), nullable=False, server_default="member")
        )


def downgrade() -> None:
    with op.batch_alter_table("structure_staff") as batch:
        batch.drop_column("role")
