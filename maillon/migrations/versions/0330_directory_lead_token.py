"""directory search at 2 million entries: every entry's search text gets the token of the
first word of its name in name order (``0n`` + that word, ``dossier_api.domain.directory.
entry_columns``), so that the full-text index tells, without reading the table, which
matches of a name prefix are not in that prefix's range of the name index (on PostgreSQL,
a search with many matches reads that range in order instead of sorting them all);
statistics refreshed for the planner.

Revision ID: 0330
Revises: 0321
"""

from __future__ import annotations

from alembic import op

revision = "0330"
down_revision = "0321"
branch_labels = None
depends_on = None

# The first word of the sort key (the name, normalized), appended as entry_columns does.
UPGRADE = {
    "postgresql": "UPDATE directory_entries SET search_text = search_text || ' 0n' || "
    "split_part(sort_key, ' ', 1) WHERE split_part(sort_key, ' ', 1) <> ''",
    "sqlite": "UPDATE directory_entries SET search_text = search_text || ' 0n' || "
    "substr(sort_key, 1, instr(sort_key || ' ', ' ') - 1) "
    "WHERE substr(sort_key, 1, 1) <> ' '",
}
DOWNGRADE = {
    "postgresql": "UPDATE directory_entries SET search_text = "
    "regexp_replace(search_text, ' 0n[0-9a-z]*$', '') WHERE search_text ~ ' 0n[0-9a-z]*$'",
    "sqlite": "UPDATE directory_entries SET search_text = substr(search_text, 1, "
    "length(search_text) - length(' 0n' || substr(sort_key, 1, instr(sort_key || ' ', ' ') - 1))) "
    "WHERE substr(sort_key, 1, 1) <> ' '",
}


def _dialect() -> str:
    return "postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"


def upgrade() -> None:
    # SQLite's full-text table follows through its update trigger (migration 0040).
    op.execute(UPGRADE[_dialect()])
    if _dialect() == "postgresql":
        op.execute("ANALYZE directory_entries")


def downgrade() -> None:
    op.execute(DOWNGRADE[_dialect()])
