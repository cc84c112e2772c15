"""Asks the appservice to carry a dossier's pending changes into its rooms right away.

The change itself is already committed with its outbox job, so this call is only about
answering with the room: if the appservice is slow or down, the job waits in the outbox
and the room follows as soon as it can."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)


class RoomSyncClient:
    def __init__(self, appservice_url: str, token: str, timeout: float = 20.0) -> None:
        self._url = appservice_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_deployment(cls, deployment: Deployment) -> RoomSyncClient:
        return cls(deployment.settings.appservice.listener.url, deployment.secrets.as_token)

    async def _post(self, path: str, what: str) -> dict[str, Any] | None:
        """The appservice's answer to an internal call, or None (said in the log)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self._url + path, headers={"Authorization": f"Bearer {self._token}"}
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict):
                    log.warning("%s deferred: appservice answered %s", what, resp.status)
                    return None
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("%s deferred: %s", what, type(exc).__name__)
            return None

    async def sync(self, dossier_id: str) -> list[dict[str, Any]] | None:
        """The dossier's rooms once up to date, or None if they could not be brought up to
        date now (the outbox retries)."""
        body = await self._post(
            f"/_maillon/dossiers/{quote(dossier_id, safe='')}/sync", "room sync"
        )
        rooms = body.get("rooms") if body is not None else None
        return rooms if isinstance(rooms, list) else None

    async def bind_directory(self, user_id: str) -> bool:
        """Publish an account's directory entry (as the store holds it) where the Synapse
        module reads it; False if the appservice could not now (said in the log)."""
        path = f"/_maillon/directory/{quote(user_id, safe='')}/bind"
        return await self._post(path, "directory binding") is not None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def main_room(rooms: list[dict[str, Any]] | None) -> str | None:
    return next((r.get("room_id") for r in rooms or [] if r.get("kind") == "main"), None)
