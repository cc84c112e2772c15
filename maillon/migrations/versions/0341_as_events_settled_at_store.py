"""the appservice's events settled when stored (an end-to-end encrypted message recorded as
room activity in the database transaction that stores it, an event no handler wants) keep
no content: ``as_events.sealed_event`` may be empty (``appservice.transactions.Routing``).

Revision ID: 0341
Revises: 0340
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0341"
down_revision = "0340"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("as_events") as batch:
        batch.alter_column("sealed_event", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # Events without content were processed when stored: only their ids (replays) are lost.
    op.execute("DELETE FROM as_events WHERE sealed_event IS NULL")
    with op.batch_alter_table("as_events") as batch:
        batch.alter_column("sealed_event", existing_type=sa.LargeBinary(), nullable=False)
