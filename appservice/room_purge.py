"""Deletes the rooms of purged dossiers from the homeserver (``RoomPurge`` rows written by
``dossier_api.domain.retention``): the media the room's events reference, then the room
with its whole history (Synapse admin API, room deletion with ``purge``), then what the
appservice itself kept of the room's events. Runs the retention policy once a day."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from sqlalchemy import Engine, delete

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

    def _homeserver_sqlite(self) -> Path | None:
        """The homeserver's database file when it is the embedded SQLite one."""
        config = self._deployment.path(self._deployment.settings.homeserver.config_file)
        with open(config, encoding="utf-8") as handle:
            database = (yaml.safe_load(handle) or {}).get("database") or {}
        if database.get("name") != "sqlite3":
            return None
        return Path(str((database.get("args") or {}).get("database")))

    def scrub_homeserver(self) -> None:
        """Overwrite the free pages the purged rooms left in the homeserver's SQLite file
        (and empty its write-ahead log); on PostgreSQL, the homeserver's own vacuum does."""
        path = self._homeserver_sqlite()
        if path is None:
            return
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def purge_pending(self) -> int:
        """Every room waiting for deletion; a failure is recorded and tried again later."""
        done = 0
        for room_id in retention.pending_room_purges(self.engine):
            try:
                self.purge_room(room_id)
            except (HomeserverError, OSError, TimeoutError, KeyError) as exc:
                log.error("deletion of a purged dossier's room failed: %s", type(exc).__name__)
                retention.room_purge_result(self.engine, room_id, f"{type(exc).__name__}: {exc}")
                continue
            retention.room_purge_result(self.engine, room_id)
            log.info("room of a purged dossier deleted from the homeserver")
            done += 1
        if done:
            try:
                self.scrub_homeserver()
            except (OSError, sqlite3.Error) as exc:
                log.error("homeserver database not compacted after a purge: %s", exc)
        return done


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
