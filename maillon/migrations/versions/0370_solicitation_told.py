"""solicitation notices: whom the bot has told of each step so far
(``solicitation_events.told``), kept after each message so a restarted bot, or its standby,
tells nobody twice

Revision ID: 0370
Revises: 0332
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0370"
down_revision = "0332"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "solicitation_events",
        sa.Column("told", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("solicitation_events") as batch:
        batch.drop_column("told")
