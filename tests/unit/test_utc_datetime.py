"""Every stored moment goes through one SQLAlchemy type, ``UTCDateTime``: written in UTC,
read back aware in UTC, on SQLite (which keeps no time zone) and on PostgreSQL (which
answers in the session's zone)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, create_engine, select

import appservice.models  # noqa: F401  (these imports put every component's tables on Base)
import coordination_bot.models  # noqa: F401
import dossier_api.domain.mail.models
import dossier_api.domain.models  # noqa: F401
from maillon.shared.store import Base, UTCDateTime, sqlalchemy_url
from tests.harness.postgres import create_database, drop_database

PARIS = ZoneInfo("Europe/Paris")
METADATA = MetaData()
MOMENTS = Table(
    "moments", METADATA, Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path}/moments.db")
        url = None
    else:
        url = create_database()
        # A session in Paris time: PostgreSQL answers timestamptz values in that zone.
        eng = create_engine(
            sqlalchemy_url(url), connect_args={"options": "-c timezone=Europe/Paris"}
        )
    METADATA.create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        if url is not None:
            drop_database(url)


def test_moments_come_back_aware_in_utc(engine: Engine) -> None:
    in_paris = dt.datetime(2026, 3, 1, 9, 30, tzinfo=PARIS)
    naive = dt.datetime(2026, 3, 1, 10, 0)  # taken as UTC
    with engine.begin() as conn:
        conn.execute(MOMENTS.insert(), [{"id": 1, "at": in_paris}, {"id": 2, "at": naive}])
    with engine.connect() as conn:
        rows = dict(conn.execute(select(MOMENTS.c.id, MOMENTS.c.at)).all())
        later = conn.scalars(
            select(MOMENTS.c.id).where(MOMENTS.c.at > dt.datetime(2026, 3, 1, 8, 45, tzinfo=dt.UTC))
        ).all()
    assert rows[1] == in_paris and rows[1].tzinfo is dt.UTC and rows[1].hour == 8
    assert rows[2] == naive.replace(tzinfo=dt.UTC) and rows[2].tzinfo is dt.UTC
    assert later == [2], "compared as instants in SQL too"


def test_every_datetime_column_of_every_component_is_utc() -> None:
    columns = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime | UTCDateTime)
    ]
    assert "circle_members.until" in columns and "mail_spool.accepted_at" in columns
    assert "as_transactions.received_at" in columns and "bot_handled_events.handled_at" in columns
    not_utc = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime)
    ]
    assert not_utc == []
