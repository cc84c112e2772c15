"""resource teams (équipes ressources): teams, their members and rota, solicitations and
their dated steps

Revision ID: 0100
Revises: 0053
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0053"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("structure_id", sa.String(length=32), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("expertise", sa.String(length=200), nullable=False),
        sa.Column("pathways", sa.JSON(), nullable=False),
        sa.Column("territory", sa.String(length=200), nullable=False),
        sa.Column("response_seconds", sa.Integer(), nullable=False),
        sa.Column("exit_delay_seconds", sa.Integer(), nullable=False),
        sa.Column("structure_account", sa.String(length=255), nullable=True),
        sa.Column("rota", sa.JSON(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["structure_id"], ["structures.id"]),
        sa.PrimaryKeyConstraint("slug"),
    )
    op.create_table(
        "team_members",
        sa.Column("team_slug", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=80), nullable=False),
        sa.Column("coordinator", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["team_slug"], ["teams.slug"]),
        sa.PrimaryKeyConstraint("team_slug", "user_id"),
    )
    op.create_table(
        "solicitations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_slug", sa.String(length=40), nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("requester", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attested", sa.Boolean(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("notified", sa.JSON(), nullable=False),
        sa.Column("deadline", WHEN, nullable=False),
        sa.Column("accepted_by", sa.String(length=255), nullable=True),
        sa.Column("circle_member_id", sa.Integer(), nullable=True),
        sa.Column("report", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["circle_member_id"], ["circle_members.id"]),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.ForeignKeyConstraint(["team_slug"], ["teams.slug"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("circle_member_id"),
    )
    for column in ("team_slug", "dossier_id", "status"):
        op.create_index(op.f(f"ix_solicitations_{column}"), "solicitations", [column])
    op.create_table(
        "solicitation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("solicitation_id", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["solicitation_id"], ["solicitations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("solicitation_id", "delivered_at"):
        op.create_index(op.f(f"ix_solicitation_events_{column}"), "solicitation_events", [column])


def downgrade() -> None:
    for column in ("solicitation_id", "delivered_at"):
        op.drop_index(op.f(f"ix_solicitation_events_{column}"), "solicitation_events")
    op.drop_table("solicitation_events")
    for column in ("team_slug", "dossier_id", "status"):
        op.drop_index(op.f(f"ix_solicitations_{column}"), "solicitations")
    op.drop_table("solicitations")
    op.drop_table("team_members")
    op.drop_table("teams")
