"""identity vigilance: blind indexes of every dossier's matricule and traits (possible
duplicates found without opening identities); identity events (status changes with their
evidence, creations despite possible duplicates)

Revision ID: 0050
Revises: 0010

Existing dossiers get both indexes: their identities are opened once, here, with the
deployment's key ring (installed before the store is opened); an identity that cannot be
opened is left without them (and said in the log).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from dossier_api.domain.ins import any_matricule_index, traits_index
from maillon.shared.crypto import DecryptionError
from maillon.shared.sealed import DOSSIER_PURPOSE, key_ring

log = logging.getLogger("alembic.runtime.migration")

revision = "0050"
down_revision = "0040"
branch_labels = None
depends_on = None

dossiers = sa.table(
    "dossiers",
    sa.column("id", sa.String),
    sa.column("identity", sa.LargeBinary),
    sa.column("matricule_index", sa.String),
    sa.column("traits_index", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("matricule_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("traits_index", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_dossiers_matricule_index"), ["matricule_index"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dossiers_traits_index"), ["traits_index"], unique=False
        )
    op.create_table(
        "identity_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("from_status", sa.String(length=5), nullable=True),
        sa.Column("to_status", sa.String(length=5), nullable=True),
        sa.Column("document_kind", sa.String(length=40), nullable=True),
        sa.Column("checked_by", sa.String(length=255), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ins_source", sa.String(length=10), nullable=True),
        sa.Column("candidates", sa.Text(), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_identity_events_dossier_id"), "identity_events", ["dossier_id"], unique=False
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(dossiers.c.id, dossiers.c.identity)).all()
    if rows:
        ring = key_ring()
        for dossier_id, sealed in rows:
            try:
                identity = ring.open_json(bytes(sealed), DOSSIER_PURPOSE) if sealed else None
            except DecryptionError:
                log.warning("dossier %s : identité illisible, sans index de doublons", dossier_id)
                continue
            conn.execute(
                sa.update(dossiers)
                .where(dossiers.c.id == dossier_id)
                .values(
                    matricule_index=any_matricule_index(ring, identity),
                    traits_index=traits_index(ring, identity),
                )
            )


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_events_dossier_id"), table_name="identity_events")
    op.drop_table("identity_events")
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_dossiers_traits_index"))
        batch_op.drop_index(batch_op.f("ix_dossiers_matricule_index"))
        batch_op.drop_column("traits_index")
        batch_op.drop_column("matricule_index")
