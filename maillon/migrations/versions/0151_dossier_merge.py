"""dossier merge: the dossier a merged dossier points to

Revision ID: 0151
Revises: 0150
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0151"
down_revision = "0150"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dossiers", sa.Column("merged_into", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("dossiers", "merged_into")  # SQLite 3.35+: no rebuild of the table
