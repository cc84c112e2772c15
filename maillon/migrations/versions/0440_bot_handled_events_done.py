"""the bot's received messages have a state: ``bot_handled_events.done`` (false: recorded
when the sync arrived, not handled yet; a standby taking over handles it). The rows that
exist were handled (claimed as they ran): done.

Revision ID: 0440
Revises: 0341
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0440"
down_revision = "0341"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bot_handled_events") as batch:
        batch.add_column(sa.Column("done", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_index("ix_bot_handled_events_done", "bot_handled_events", ["done"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bot_handled_events_done", table_name="bot_handled_events")
    with op.batch_alter_table("bot_handled_events") as batch:
        batch.drop_column("done")
