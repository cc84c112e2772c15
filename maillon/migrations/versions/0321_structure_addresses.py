"""structure addresses: a structure's slug (its Matrix address @structure.<slug>:<server>,
existing structures given one from their name) and the structure a solicitation is
addressed to (``solicitations.structure_id``, when its address was invited)

Revision ID: 0321
Revises: 0320
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maillon.shared.circle import numbered_slug, slugify

revision = "0321"
down_revision = "0320"
branch_labels = None
depends_on = None

STRUCTURES = sa.table(
    "structures",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("slug", sa.String),
)


def upgrade() -> None:
    # Columns added in place (no table rebuilt: on SQLite a rebuild of a table other rows
    # point to fails under foreign keys), a unique index for the slug.
    op.add_column("structures", sa.Column("slug", sa.String(length=40), nullable=True))
    conn = op.get_bind()
    taken: set[str] = set()
    for row_id, name in conn.execute(
        sa.select(STRUCTURES.c.id, STRUCTURES.c.name).order_by(STRUCTURES.c.name)
    ).all():
        base = slugify(str(name))
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = numbered_slug(base, n)
        taken.add(slug)
        conn.execute(sa.update(STRUCTURES).where(STRUCTURES.c.id == row_id).values(slug=slug))
    op.create_index("ix_structures_slug", "structures", ["slug"], unique=True)
    if conn.dialect.name == "sqlite":  # ADD COLUMN … REFERENCES: SQLite's own way
        op.execute(
            "ALTER TABLE solicitations ADD COLUMN structure_id VARCHAR(32) "
            "REFERENCES structures (id)"
        )
    else:
        op.add_column(
            "solicitations", sa.Column("structure_id", sa.String(length=32), nullable=True)
        )
        op.create_foreign_key(
            "fk_solicitations_structure_id",
            "solicitations",
            "structures",
            ["structure_id"],
            ["id"],
        )
    op.create_index("ix_solicitations_structure_id", "solicitations", ["structure_id"])


def downgrade() -> None:
    op.drop_index("ix_solicitations_structure_id", table_name="solicitations")
    with op.batch_alter_table("solicitations") as batch:
        if op.get_bind().dialect.name != "sqlite":
            batch.drop_constraint("fk_solicitations_structure_id", type_="foreignkey")
        batch.drop_column("structure_id")
    op.drop_index("ix_structures_slug", table_name="structures")
    with op.batch_alter_table("structures") as batch:
        batch.drop_column("slug")
