"""dashboards: the month-final activity counts of closed months, per structure, pathway
and month (``dossier_api.domain.indicators``: computed once a month is over, the current
month counted live)

Revision ID: 0310
Revises: 0230
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0310"
down_revision = "0230"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indicator_sealed_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "indicator_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("structure_id", sa.String(length=32), nullable=False),
        sa.Column("pathway", sa.String(length=60), nullable=False),
        sa.Column("key", sa.String(length=30), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["month"],
            ["indicator_sealed_months.month"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("month", "structure_id", "pathway", "key"),
    )


def downgrade() -> None:
    op.drop_table("indicator_months")
    op.drop_table("indicator_sealed_months")
