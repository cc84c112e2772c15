"""dossiers: blind index of the INS (routing without opening identities); closing reason
sealed

Revision ID: 0006
Revises: 0005

Existing rows are rewritten: the blind index of every qualified identity is computed and
every closing reason is sealed. That needs the deployment's key ring, installed before the
store is opened (``maillon.shared.sealed.install_key_ring``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dossier_api.domain.ins import QUALIFIED, identity_index
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import DOSSIER_PURPOSE, key_ring

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

dossiers = sa.table(
    "dossiers",
    sa.column("id", sa.String),
    sa.column("identity", sa.LargeBinary),
    sa.column("identity_status", sa.String),
    sa.column("status_reason", sa.String),
    sa.column("sealed_reason", sa.LargeBinary),
    sa.column("ins_index", sa.String),
)


def _ring() -> KeyRing:
    try:
        return key_ring()
    except RuntimeError as exc:
        raise RuntimeError(
            "migration 0006 : la clé de chiffrement est nécessaire pour réécrire les dossiers "
            "existants (install_key_ring avant d'ouvrir la base)"
        ) from exc


# recreate="never": plain ALTER TABLE statements (SQLite ≥ 3.35 drops and renames columns
# in place). Re-creating the table, Alembic's SQLite default, fails as soon as another table
# refers to a dossier (foreign keys are on), i.e. on every deployment in use.
def upgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("ins_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sealed_reason", sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f("ix_dossiers_ins_index"), ["ins_index"], unique=False)
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            dossiers.c.id,
            dossiers.c.identity,
            dossiers.c.identity_status,
            dossiers.c.status_reason,
        ).where(
            sa.or_(dossiers.c.identity_status == QUALIFIED, dossiers.c.status_reason.is_not(None))
        )
    ).all()
    if rows:
        ring = _ring()
        for dossier_id, identity, status, reason in rows:
            values: dict[str, object] = {}
            if status == QUALIFIED and identity is not None:
                opened = ring.open_json(bytes(identity), DOSSIER_PURPOSE)
                values["ins_index"] = identity_index(ring, opened, status)
            if reason is not None:
                values["sealed_reason"] = ring.seal_json(reason, DOSSIER_PURPOSE)
            conn.execute(sa.update(dossiers).where(dossiers.c.id == dossier_id).values(values))
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("status_reason")
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.alter_column("sealed_reason", new_column_name="status_reason")


def downgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.alter_column("status_reason", new_column_name="sealed_reason")
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.String(length=500), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(dossiers.c.id, dossiers.c.sealed_reason).where(
            dossiers.c.sealed_reason.is_not(None)
        )
    ).all()
    if rows:
        ring = _ring()
        for dossier_id, sealed in rows:
            reason = ring.open_json(bytes(sealed), DOSSIER_PURPOSE)
            conn.execute(
                sa.update(dossiers)
                .where(dossiers.c.id == dossier_id)
                .values(status_reason=str(reason)[:500])
            )
    with op.batch_alter_table("dossiers", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_dossiers_ins_index"))
        batch_op.drop_column("sealed_reason")
        batch_op.drop_column("ins_index")
