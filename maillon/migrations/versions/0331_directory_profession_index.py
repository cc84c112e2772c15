"""directory search at 2 million entries: on PostgreSQL, a partial index of the listed
entries by profession in name order (byte order, as the name index of migration 0230), read
when a search by profession code (and département, name...) matches too many entries to
sort them and too few per page of the whole name index (``dossier_api.domain.directory``).

Revision ID: 0331
Revises: 0330
"""

from __future__ import annotations

from alembic import op

revision = "0331"
down_revision = "0330"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: FTS5 finds the matches
    op.execute(
        "CREATE INDEX ix_directory_entries_listed_profession ON directory_entries "
        '(profession_code, sort_key COLLATE "C") WHERE listed'
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_directory_entries_listed_profession", table_name="directory_entries")
