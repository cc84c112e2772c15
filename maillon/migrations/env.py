"""Alembic environment of Maillon's store (every component's tables). Run programmatically
by ``maillon.shared.store.migrate``; the connection is handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

import appservice.models  # noqa: F401
import coordination_bot.models  # noqa: F401
import dossier_api.domain.mail.models  # registers the tables, like the imports below
import dossier_api.domain.models  # noqa: F401
from maillon.shared.store import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
