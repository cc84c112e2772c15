"""Alembic environment of Maillon's store (every component's tables). Run programmatically
by ``maillon.shared.store.migrate``; the connection is handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from maillon.wiring.tables import METADATA

connection = context.config.attributes["connection"]


def include_object(obj: object, name: str | None, kind: str, reflected: bool, _: object) -> bool:
    """The directory's search indexes live outside the models (PostgreSQL generated
    tsvector column, SQLite FTS5 table and its shadow tables: migration 0040; the name
    index of PostgreSQL: migration 0230)."""
    if kind in ("table", "index") and name is not None and "directory_fts" in name:
        return False
    if kind == "index" and name == "ix_directory_entries_fts":
        return False
    # PostgreSQL searches names through a partial, byte-ordered index that replaces the
    # models' (listed, sort_key) one there (migration 0230); SQLite keeps the models' index.
    if kind == "index" and name in (
        "ix_directory_entries_listed_name",
        "ix_directory_entries_listed_profession",  # migration 0331
    ):
        return False
    if kind == "index" and name == "ix_directory_entries_sort":
        return bool(connection.dialect.name != "postgresql")
    return not (kind == "column" and name == "search_vector")


context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
