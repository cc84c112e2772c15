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

    async def sync(self, dossier_id: str) -> list[dict[str, Any]] | None:
        """The dossier's rooms once up to date, or None if they could not be brought up to
        date now (the outbox retries)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self._url}/_maillon/dossiers/{quote(dossier_id, safe='')}/sync"
        try:
            async with self._session.post(
                url, headers={"Authorization": f"Bearer {self._token}"}
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict):
                    log.warning("room sync deferred: appservice answered %s", resp.status)
                    return None
                rooms = body.get("rooms")
                return rooms if isinstance(rooms, list) else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("room sync deferred: %s", type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def main_room(rooms: list[dict[str, Any]] | None) -> str | None:
    return next((r.get("room_id") for r in rooms or [] if r.get("kind") == "main"), None)
