"""decision log positions: how far each file of the care-circle module's decision log is
loaded into the dossier audit

Revision ID: 0051
Revises: 0050
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0051"
down_revision = "0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_log_positions",
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("file"),
    )


def downgrade() -> None:
    op.drop_table("decision_log_positions")
