"""a structure's account (its Matrix account) and MSSanté address, set in /admin/structures

Revision ID: 0111
Revises: 0110
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0111"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("structures") as batch:
        batch.add_column(sa.Column("account", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("mssante", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("structures") as batch:
        batch.drop_column("mssante")
        batch.drop_column("account")
