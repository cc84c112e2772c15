"""What is recorded once per event (room activity, …) is inserted in one statement that
skips an existing key, on both stores: the first insert says True, a repeat says False and
leaves the first row as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

import dossier_api.domain.models  # noqa: F401  (the tables)
from dossier_api.domain.models import DecisionLogPosition
from maillon.shared.store import insert_once, make_engine
from tests.harness.postgres import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path / 'once.db'}")
        yield made
        made.dispose()
        return
    url = create_database()
    made = make_engine(url)
    try:
        yield made
    finally:
        made.dispose()
        drop_database(url)


def test_a_repeated_insert_is_skipped_and_keeps_the_first_row(engine: Engine) -> None:
    with engine.begin() as connection:
        assert insert_once(connection, DecisionLogPosition, {"file": "a.jsonl", "offset": 10})
    with engine.begin() as connection:
        assert not insert_once(connection, DecisionLogPosition, {"file": "a.jsonl", "offset": 99})
        assert insert_once(connection, DecisionLogPosition, {"file": "b.jsonl", "offset": 5})
    with engine.connect() as connection:
        rows = connection.execute(
            select(DecisionLogPosition.file, DecisionLogPosition.offset).order_by(
                DecisionLogPosition.file
            )
        ).all()
    assert [tuple(r) for r in rows] == [("a.jsonl", 10), ("b.jsonl", 5)]
