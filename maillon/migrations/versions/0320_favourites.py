"""favourites: a professional's named groups of colleagues (``favourite_groups``) and their
members, people of the directory (``favourite_members``: an account or an RPPS)

Revision ID: 0320
Revises: 0310
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0320"
down_revision = "0310"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "favourite_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("name_key", sa.String(length=80), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name_key", name="uq_favourite_group_name"),
    )
    op.create_index(op.f("ix_favourite_groups_owner"), "favourite_groups", ["owner"])
    op.create_table(
        "favourite_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("rpps", sa.String(length=11), nullable=True),
        sa.Column("role", sa.String(length=12), nullable=True),
        sa.Column("added_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["favourite_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "user_id", name="uq_favourite_member_user"),
        sa.UniqueConstraint("group_id", "rpps", name="uq_favourite_member_rpps"),
    )
    op.create_index(op.f("ix_favourite_members_group_id"), "favourite_members", ["group_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_favourite_members_group_id"), "favourite_members")
    op.drop_table("favourite_members")
    op.drop_index(op.f("ix_favourite_groups_owner"), "favourite_groups")
    op.drop_table("favourite_groups")
