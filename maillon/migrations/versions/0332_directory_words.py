"""directory search at 2 million entries: the words of the national directory's entries
(``directory_words``, filled on PostgreSQL from the full-text vectors, then by each import),
so that a search expands a prefix into the few words that start with it
(``dossier_api.domain.directory``).

Revision ID: 0332
Revises: 0331
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0332"
down_revision = "0331"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("directory_words", sa.Column("word", sa.Text(), primary_key=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "INSERT INTO directory_words (word) SELECT DISTINCT "
            "unnest(tsvector_to_array(search_vector)) FROM directory_entries"
        )
        op.execute("ANALYZE directory_words")


def downgrade() -> None:
    op.drop_table("directory_words")
