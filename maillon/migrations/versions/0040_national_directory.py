"""national directory: Annuaire Santé entries, MSSanté mailboxes, imports, history;
full-text index (PostgreSQL tsvector + GIN, SQLite FTS5 kept by triggers)

Revision ID: 0040
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0030"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def _record(name: str, *extra: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("national_id", sa.String(20), nullable=False, unique=True),
        *extra,
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("first_import_id", sa.Integer(), nullable=False),
        sa.Column("changed_import_id", sa.Integer(), nullable=False),
    )


def upgrade() -> None:
    op.create_table(
        "directory_imports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("rejections", sa.JSON(), nullable=False),
    )
    _record(
        "directory_entries",
        sa.Column("id_type", sa.String(1), nullable=False),
        sa.Column("identifier", sa.String(11), nullable=False),
        sa.Column("last_name", sa.String(200), nullable=False),
        sa.Column("first_name", sa.String(200), nullable=False),
        sa.Column("profession_code", sa.String(10), nullable=False),
        sa.Column("profession", sa.String(200), nullable=False),
        sa.Column("sort_key", sa.String(450), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
    )
    op.create_index("ix_directory_entries_identifier", "directory_entries", ["identifier"])
    op.create_index("ix_directory_entries_sort", "directory_entries", ["listed", "sort_key"])
    _record("directory_mailboxes")
    op.create_table(
        "directory_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.Integer(), sa.ForeignKey("directory_imports.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("national_id", sa.String(20), nullable=False),
        sa.Column("change", sa.String(10), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=True),
    )
    op.create_index("ix_directory_changes_import_id", "directory_changes", ["import_id"])
    op.create_index("ix_directory_changes_key", "directory_changes", ["kind", "national_id"])
    op.create_table(
        "directory_staging",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("national_id", sa.String(20), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_directory_staging_key", "directory_staging", ["import_id", "national_id", "line_no"]
    )
    if op.get_bind().dialect.name == "postgresql":
        # Built-in full text ('simple': no stemming; words are normalized by Maillon), no
        # extension needed; prefix queries (word:*) use the GIN index.
        op.execute(
            "ALTER TABLE directory_entries ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED"
        )
        op.execute(
            "CREATE INDEX ix_directory_entries_fts ON directory_entries USING gin (search_vector)"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE directory_fts USING fts5(search_text, "
            "content='directory_entries', content_rowid='id', tokenize='unicode61')"
        )
        op.execute(
            "CREATE TRIGGER directory_fts_ai AFTER INSERT ON directory_entries BEGIN "
            "INSERT INTO directory_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER directory_fts_ad AFTER DELETE ON directory_entries BEGIN "
            "INSERT INTO directory_fts(directory_fts, rowid, search_text) "
            "VALUES ('delete', old.id, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER directory_fts_au AFTER UPDATE OF search_text ON directory_entries "
            "BEGIN INSERT INTO directory_fts(directory_fts, rowid, search_text) "
            "VALUES ('delete', old.id, old.search_text); "
            "INSERT INTO directory_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("directory_fts_ai", "directory_fts_ad", "directory_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS directory_fts")
    for table in (
        "directory_staging",
        "directory_changes",
        "directory_mailboxes",
        "directory_entries",
        "directory_imports",
    ):
        op.drop_table(table)
