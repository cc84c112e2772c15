"""workspace: blind index of patient names (search without opening identities); sessions
of the workspace pages and widgets

Revision ID: 0020
Revises: 0010

Existing dossiers get the digests of their name tokens (``dossier_api.domain.names``): that
needs the deployment's key ring, installed before the store is opened
(``maillon.shared.sealed.install_key_ring``), as for 0006.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dossier_api.domain.names import identity_digests
from maillon.shared.sealed import DOSSIER_PURPOSE, key_ring

revision = "0020"
down_revision = "0010"
branch_labels = None
depends_on = None

dossiers = sa.table("dossiers", sa.column("id", sa.String), sa.column("identity", sa.LargeBinary))


def upgrade() -> None:
    names = op.create_table(
        "dossier_names",
        sa.Column("dossier_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"]),
        sa.PrimaryKeyConstraint("dossier_id", "digest"),
    )
    op.create_index("ix_dossier_names_digest", "dossier_names", ["digest", "dossier_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id_digest"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    conn = op.get_bind()
    rows = conn.execute(sa.select(dossiers.c.id, dossiers.c.identity)).all()
    if not rows:
        return
    try:
        ring = key_ring()
    except RuntimeError as exc:
        raise RuntimeError(
            "migration 0020 : la clé de chiffrement est nécessaire pour indexer les noms des "
            "dossiers existants (install_key_ring avant d'ouvrir la base)"
        ) from exc
    for dossier_id, identity in rows:
        opened = ring.open_json(bytes(identity), DOSSIER_PURPOSE) if identity else None
        digests = identity_digests(ring, opened)
        if digests:
            conn.execute(
                names.insert(), [{"dossier_id": dossier_id, "digest": d} for d in sorted(digests)]
            )


def downgrade() -> None:
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_dossier_names_digest", table_name="dossier_names")
    op.drop_table("dossier_names")
