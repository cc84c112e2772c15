"""Deletes the rooms of purged dossiers from the homeserver (``RoomPurge`` rows written by
``dossier_api.domain.retention``): the media the room's events reference, then the room
with its whole history (Synapse admin API, room deletion with ``purge``), then what the
appservice itself kept of the room's events. Runs the retention policy once a day."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any
from urllib.parse import quote

import psycopg
import yaml
from psycopg import sql as psycopg_sql
from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError

from appservice.models import AsEvent
from dossier_api.domain import retention
from maillon.shared.clock import utcnow
from maillon.shared.homeserver_client import HomeserverError
from maillon.shared.service_account import admin_request
from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)
DAY = 86400.0


class RoomPurger:
    def __init__(self, deployment: Deployment, engine: Engine, poll: float = 0.5) -> None:
        self._deployment = deployment
        self.engine = engine
        self._poll = poll

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return admin_request(self._deployment, method, "/_synapse/admin" + path, body)

    def purge_room(self, room_id: str, timeout: float = 300.0) -> None:
        """Media first (the listing needs the room's events), then the room."""
        room = quote(room_id, safe="")
        try:
            media = self._admin("GET", f"/v1/room/{room}/media")
        except HomeserverError as exc:
            if exc.status == 404:
                return  # already gone (an earlier attempt finished)
            raise
        # What the homeserver sees in clear events, and the files of encrypted ones.
        listed = media.get("local", []) if isinstance(media, dict) else []
        ours = self._deployment.settings.server_name
        for uri in sorted({*map(str, listed), *retention.room_media(self.engine, room_id)}):
            server, _, media_id = uri.removeprefix("mxc://").partition("/")
            if server != ours or not media_id:
                continue  # a peer server's copy: that server's own retention applies
            try:
                self._admin("DELETE", f"/v1/media/{quote(server)}/{quote(media_id)}")
            except HomeserverError as exc:
                if exc.status != 404:
                    raise
        started = self._admin("DELETE", f"/v2/rooms/{room}", {"purge": True, "block": False})
        delete_id = quote(str(started["delete_id"]), safe="")
        deadline = time.monotonic() + timeout
        while True:
            status = self._admin("GET", f"/v2/rooms/delete_status/{delete_id}")
            if status.get("status") == "complete":
                break
            if status.get("status") == "failed":
                raise HomeserverError(f"suppression de salle échouée : {status.get('error')}")
            if time.monotonic() > deadline:
                raise TimeoutError("suppression de salle trop longue")
            time.sleep(self._poll)
        with self.engine.begin() as conn:
            conn.execute(delete(AsEvent).where(AsEvent.room_id == room_id))

    def _homeserver_database(self) -> dict[str, Any]:
        """The ``database`` section of the homeserver's configuration."""
        config = self._deployment.path(self._deployment.settings.homeserver.config_file)
        with open(config, encoding="utf-8") as handle:
            return dict((yaml.safe_load(handle) or {}).get("database") or {})

    def scrub_homeserver(self) -> None:
        """Overwrite what the purged rooms left in the homeserver's database files: SQLite,
        its free pages and write-ahead log; PostgreSQL, see ``scrub_homeserver_postgres``."""
        database = self._homeserver_database()
        args = dict(database.get("args") or {})
        if database.get("name") == "psycopg2":
            scrub_homeserver_postgres(args)
            return
        if database.get("name") != "sqlite3":
            return
        conn = sqlite3.connect(str(args.get("database")), timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def purge_pending(self) -> int:
        """Every room waiting for deletion; a failure is recorded and tried again later.
        The rooms deleted are marked done once the databases' files are scrubbed."""
        deleted = []
        for room_id in retention.pending_room_purges(self.engine):
            try:
                self.purge_room(room_id)
            except (HomeserverError, OSError, TimeoutError, KeyError) as exc:
                log.error("deletion of a purged dossier's room failed: %s", type(exc).__name__)
                retention.room_purge_result(self.engine, room_id, f"{type(exc).__name__}: {exc}")
                continue
            log.info("room of a purged dossier deleted from the homeserver")
            deleted.append(room_id)
        if deleted:
            try:  # the appservice's (sealed) copies of the rooms' events, then Synapse's
                retention.scrub(self.engine, {AsEvent.__tablename__})
                self.scrub_homeserver()
            except (OSError, sqlite3.Error, psycopg.Error, SQLAlchemyError) as exc:
                log.error("homeserver database not compacted after a purge: %s", type(exc).__name__)
        for room_id in deleted:
            retention.room_purge_result(self.engine, room_id)
        return len(deleted)


# Tables of Synapse's schema that hold what a room deletion removes: those keyed by room or
# by event (``purge_room_tables_with_room_id_column`` / ``…_with_event_id_index`` in
# Synapse's purge_events.py, the state groups' tables included), found in the catalog so
# that a Synapse upgrade adding a table is covered without a list to keep in step.
ROOM_TABLES = """
SELECT DISTINCT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
  AND c.column_name IN ('room_id', 'event_id') ORDER BY c.table_name
"""


def scrub_homeserver_postgres(args: dict[str, Any]) -> list[str]:
    """After Synapse's room deletion with ``purge``, the deleted rows of ``event_json``,
    ``events``, the state, stream and search tables are dead tuples whose bytes stay in
    the table files until the pages are rewritten: ``VACUUM FULL`` of each table keyed by
    room or event rewrites it (and its indexes and TOAST) into new files and drops the old
    ones. It runs as Synapse's own database role (the owner of its tables), here, once after
    each batch of purged rooms; each table is locked (ACCESS EXCLUSIVE) while it is
    rewritten, so Synapse's requests on it wait that long. Then the write-ahead log: a
    segment switch and a checkpoint let the server remove the segments that held the rows
    (removed with ``wal_recycle = off``; recycled, kept until overwritten, otherwise) — when
    the role may (superuser, or ``pg_checkpoint`` and EXECUTE on ``pg_switch_wal``); else
    the server's next checkpoints do it. WAL archives, replicas and backups are not
    reached. Returns the tables rewritten."""
    options = {
        "dbname": args.get("dbname") or args.get("database"),
        **{k: args[k] for k in ("user", "password", "host", "port") if args.get(k) is not None},
    }
    with psycopg.connect(autocommit=True, **options) as conn:
        tables = [str(row[0]) for row in conn.execute(ROOM_TABLES)]
        for table in tables:
            conn.execute(psycopg_sql.SQL("VACUUM FULL {}").format(psycopg_sql.Identifier(table)))
        for statement in retention.statistics_scrub(tables):
            conn.execute(statement.encode())
        try:
            conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            log.warning(
                "homeserver database: no right to switch and checkpoint the write-ahead log "
                "after a purge; the server's next checkpoints remove the old segments"
            )
        recycle = conn.execute("SHOW wal_recycle").fetchone()
        if recycle and recycle[0] == "on":
            log.warning(
                "homeserver database: wal_recycle is on, recycled write-ahead log segments "
                "keep purged rows until overwritten (set wal_recycle = off)"
            )
    return tables


async def purge_loop(purger: RoomPurger, interval: float = 2.0) -> None:
    """Rooms of purged dossiers, as they come (the API's run of the policy queues them)."""
    while True:
        try:
            await asyncio.to_thread(purger.purge_pending)
        except Exception as exc:
            log.error("room purge loop error: %s", type(exc).__name__)
        await asyncio.sleep(interval)


async def daily_loop(engine: Engine) -> None:
    """The retention policy, once a day (first run at start)."""
    while True:
        try:
            steps = await asyncio.to_thread(retention.daily, engine, utcnow())
            if steps:
                log.info("retention policy applied: %d dossier(s)", len(steps))
        except Exception as exc:
            log.error("retention policy run failed: %s", type(exc).__name__)
        await asyncio.sleep(DAY)
