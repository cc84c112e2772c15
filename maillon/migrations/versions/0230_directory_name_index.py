"""directory search at 2 million entries: on PostgreSQL, a partial index of the listed
entries in name order (byte order, the order the search sorts in whatever the database's
collation), read when a search matches too many entries to sort them
(``dossier_api.domain.directory``); it replaces the (listed, sort_key) index there.

Revision ID: 0230
Revises: 0151
"""

from __future__ import annotations

from alembic import op

revision = "0230"
down_revision = "0220"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps ix_directory_entries_sort (FTS5 finds the matches)
    op.execute(
        "CREATE INDEX ix_directory_entries_listed_name ON directory_entries "
        '(sort_key COLLATE "C") WHERE listed'
    )
    op.drop_index("ix_directory_entries_sort", table_name="directory_entries")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_directory_entries_sort", "directory_entries", ["listed", "sort_key"])
    op.drop_index("ix_directory_entries_listed_name", table_name="directory_entries")
