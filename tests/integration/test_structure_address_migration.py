"""Migration 0321 gives every existing structure a slug for its Matrix address, from its
name (numbered when two names fold alike), on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import Structure
from maillon.shared.store import alembic_config, make_engine
from tests.integration.test_store_migrations import _insert
from tests.integration.test_store_migrations import database_url as database_url  # fixture


def test_migration_0321_gives_existing_structures_a_slug(database_url: str) -> None:
    engine = make_engine(database_url, create_tables=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0320")
            _insert(conn, "structures", {"id": "s1", "name": "DAC Haute-Garonne"})
            _insert(conn, "structures", {"id": "s2", "name": "DAC haute garonne"})
            _insert(conn, "structures", {"id": "s3", "name": "CH Purpan — Gériatrie"})
        engine.dispose()
        engine = make_engine(database_url)  # migrates to head
        with Session(engine) as session:
            slugs = {s.id: s.slug for s in session.scalars(select(Structure))}
        assert slugs["s3"] == "ch-purpan-geriatrie"
        assert sorted([slugs["s1"], slugs["s2"]]) == ["dac-haute-garonne", "dac-haute-garonne-2"]
    finally:
        engine.dispose()
