"""Maillon's store schema comes from Alembic migrations, identical to the models, on SQLite
and PostgreSQL; migrating twice is harmless."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Column, Connection, MetaData, Table, inspect, text

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


def _filler(column: Column[Any], n: int) -> Any:
    """Some value of the column's type, for a row written as an older version would."""
    kind = column.type.python_type
    if kind is str:
        return f"v{n}"
    if kind is bytes:
        return b"\0"
    if kind is bool:
        return False
    if kind is int:
        return 0
    if kind is dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    raise AssertionError(f"no filler for {column.name}: {kind}")


def _insert(conn: Connection, name: str, values: dict[str, Any]) -> None:
    table = Table(name, MetaData(), autoload_with=conn)
    row = dict(values)
    for n, column in enumerate(table.columns):
        integer_key = column.primary_key and column.type.python_type is int
        if column.name not in row and not column.nullable and not integer_key:
            row[column.name] = _filler(column, n)
    conn.execute(table.insert().values(row))


def test_rooms_made_by_older_templates_are_synced_again(database_url: str) -> None:
    """0010: every dossier with rooms gets one room-sync job, so its rooms lose the pathway
    they show in clear (name, topic, dossier link)."""
    engine = make_engine(database_url, create_tables=False)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0005")
        for dossier, room in (("D1", "!a:localhost"), ("D2", None), ("D3", "!c:localhost")):
            _insert(conn, "dossiers", {"id": dossier, "mail_localpart": dossier.lower()})
            _insert(
                conn, "dossier_rooms", {"id": f"R{dossier}", "dossier_id": dossier, "room_id": room}
            )
        _insert(conn, "dossier_rooms", {"id": "RD3b", "dossier_id": "D3", "room_id": "!d:x"})
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        jobs = conn.execute(
            text("SELECT dossier_id, subject, done_at FROM room_sync_jobs ORDER BY dossier_id")
        ).all()
    engine.dispose()
    assert [tuple(j) for j in jobs] == [("D1", "rooms", None), ("D3", "rooms", None)]
