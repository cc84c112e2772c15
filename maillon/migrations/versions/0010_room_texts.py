"""patient rooms: name, topic and dossier link without the pathway

Rooms made before this version carry their pathway in clear (room name "… — parcours
PCO-TND", topic, the ``pathway`` key of ``fr.maillon.dossier``): health information kept by
every server of the room. One room-sync job per dossier with rooms brings each room to the
current templates (the appservice compares before writing: rooms already right are left).

Revision ID: 0010
Revises: 0005
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

ROOMS = "rooms"  # dossier_api.domain.rooms.ROOMS (a migration does not import the domain)


def upgrade() -> None:
    jobs = sa.table(
        "room_sync_jobs",
        sa.column("dossier_id", sa.String),
        sa.column("subject", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("attempts", sa.Integer),
    )
    rooms = sa.table("dossier_rooms", sa.column("dossier_id", sa.String), sa.column("room_id"))
    now = dt.datetime.now(dt.UTC)
    dossiers = (
        sa.select(
            rooms.c.dossier_id,
            sa.literal(ROOMS, sa.String),
            sa.literal(now, sa.DateTime(timezone=True)),
            sa.literal(0, sa.Integer),
        )
        .where(rooms.c.room_id.is_not(None))
        .distinct()
    )
    op.execute(
        jobs.insert().from_select(["dossier_id", "subject", "created_at", "attempts"], dossiers)
    )


def downgrade() -> None:
    """Nothing to undo: the jobs are done or harmless."""
