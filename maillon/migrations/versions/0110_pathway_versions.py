"""pathway versions in the store (the console edits them, ``config/pathways`` seeds them);
each dossier records the version of its pathway it follows

Revision ID: 0110
Revises: 0100
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pathway_id", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("pathway_id", "version"),
    )
    op.create_index("ix_pathway_versions_pathway_id", "pathway_versions", ["pathway_id"])
    with op.batch_alter_table("dossiers") as batch:
        batch.add_column(
            sa.Column("pathway_version", sa.Integer(), nullable=False, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("dossiers") as batch:
        batch.drop_column("pathway_version")
    op.drop_index("ix_pathway_versions_pathway_id", table_name="pathway_versions")
    op.drop_table("pathway_versions")
