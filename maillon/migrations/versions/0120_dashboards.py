"""dashboards: the columns a structure's extraction may hold, the monthly reports

Revision ID: 0120
Revises: 0111
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0120"
down_revision = "0111"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "extraction_settings",
        sa.Column("structure_id", sa.String(32), sa.ForeignKey("structures.id"), primary_key=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "monthly_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("structure_id", sa.String(32), sa.ForeignKey("structures.id"), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.UniqueConstraint("structure_id", "month", name="uq_monthly_report"),
    )
    op.create_index("ix_monthly_reports_structure_id", "monthly_reports", ["structure_id"])


def downgrade() -> None:
    op.drop_index("ix_monthly_reports_structure_id", table_name="monthly_reports")
    op.drop_table("monthly_reports")
    op.drop_table("extraction_settings")
