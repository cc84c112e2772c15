"""directory search at 2 million entries: on PostgreSQL, the name indexes of the listed
entries (whole, migration 0230, and by profession, 0331) carry each entry's full-text vector
(INCLUDE), so that a search reading entries in name order tests its words against the
index alone (an index-only scan), without reading each entry's row
(``dossier_api.domain.directory``).

Revision ID: 0340
Revises: 0370
"""

from __future__ import annotations

from alembic import op

revision = "0340"
down_revision = "0370"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_directory_entries_listed_name": '(sort_key COLLATE "C")',
    "ix_directory_entries_listed_profession": '(profession_code, sort_key COLLATE "C")',
}


def _rebuild(include: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: FTS5 finds the matches
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="directory_entries")
        op.execute(f"CREATE INDEX {name} ON directory_entries {columns}{include} WHERE listed")


def upgrade() -> None:
    _rebuild(" INCLUDE (id, search_vector)")


def downgrade() -> None:
    _rebuild("")
