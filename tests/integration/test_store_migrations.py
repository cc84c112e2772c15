"""Maillon's store schema comes from Alembic migrations, identical to the models, on SQLite
and PostgreSQL; migrating twice is harmless."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from maillon.shared.store import alembic_config, make_engine
from tests.harness.postgres import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    url = create_database("maillon_migrations")
    try:
        yield url
    finally:
        drop_database(url)


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    make_engine(database_url).dispose()  # second start: nothing to do, no error
    with engine.connect() as conn:
        command.check(alembic_config(conn))  # raises if models and schema differ
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {"dossiers", "circle_members", "notes", "as_events", "audit_log"} <= tables
