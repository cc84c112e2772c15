"""Maillon's own database: engine factory for the embedded SQLite file or PostgreSQL.

On PostgreSQL, Maillon's tables live in their own schema ``maillon`` beside Synapse's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Connection, DateTime, Dialect, Engine, create_engine, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from alembic.config import Config

SCHEMA = "maillon"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A moment, stored in UTC and read back aware in UTC on every database: SQLite keeps
    no time zone (values come back naive), PostgreSQL answers in the session's zone. A naive
    value written is taken as UTC. The one place that knows; nothing else patches times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        return None if value is None else _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else _utc(value)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base shared by every Maillon component's tables. Every ``dt.datetime``
    column is a ``UTCDateTime``."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


def sqlalchemy_url(database_url: str) -> str:
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# PostgreSQL connections of one engine, at most; each is kept once opened. (SQLAlchemy's
# default, 5 kept and 10 more opened when needed then closed, made a burst of mails open
# and close a connection for most mails: a backend started each time, with its catalog
# caches read again.)
PG_POOL_SIZE = 15
_LOCK_ID = 0x4D41494C  # "MAIL": one migrator at a time on PostgreSQL


def insert_or_skip(connection: Connection, model: type[Base]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` into ``model``'s table (PostgreSQL and SQLite):
    rows whose primary key (or a unique key) is already there are skipped, in one
    statement, however often and concurrently they arrive. Add ``.values(…)`` (one row or
    several) and ``.returning(…)`` to learn which rows went in."""
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing()


def insert_once(connection: Connection, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same primary key (or unique key) exists
    (``insert_or_skip``); True if it was inserted. For what is recorded once per event."""
    key = next(iter(sa_inspect(model).primary_key))
    statement = insert_or_skip(connection, model).values(**values).returning(key)
    # RETURNING, not rowcount: the driver may not report a count for this statement.
    return connection.execute(statement).first() is not None


@contextlib.contextmanager
def reading(engine: Engine, session: Session | None) -> Iterator[Session]:
    """``session`` when given (a read inside the caller's transaction, on its connection),
    else a session of its own for this read only."""
    if session is not None:
        yield session
        return
    with Session(engine) as own:
        yield own


def alembic_config(connection: Connection) -> Config:
    from alembic.config import Config  # Alembic: loaded by the process that migrates only

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the latest migration (Alembic)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        from alembic import command

        command.upgrade(alembic_config(conn), "head")


def make_engine(database_url: str, create_tables: bool = True) -> Engine:
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(
            url,
            connect_args={"options": f"-c search_path={SCHEMA}"},
            pool_pre_ping=True,
            pool_size=PG_POOL_SIZE,
            max_overflow=0,
            hide_parameters=True,  # never let bound values reach a log line
        )
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    if create_tables:
        migrate(engine)
    return engine
