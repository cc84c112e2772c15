"""Alembic environment of Maillon's store (every component's tables). Run programmatically
by ``maillon.shared.store.migrate``; the connection is handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from maillon.wiring.tables import METADATA

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
