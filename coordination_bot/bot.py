"""The coordination bot's event loop: joins direct chats, decrypts, answers commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    MatrixRoom,
    MegolmEvent,
    RoomMessageText,
    SyncResponse,
)

from coordination_bot.help_text import help_message, unknown_command
from coordination_bot.session import obtain_credentials
from maillon.settings import Deployment

log = logging.getLogger(__name__)

HELP_WORDS = {"!aide": "fr", "!help": "en"}
UNDECRYPTABLE_FR = (
    "Je n'ai pas pu déchiffrer ce message (clé de session manquante). "
    "J'ai demandé la clé ; renvoyez la commande si je ne réponds pas."
)


def _server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


class CoordinationBot:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.settings = deployment.settings
        self.client: AsyncClient | None = None
        self.started_ms = int(time.time() * 1000)
        self._ready_path = deployment.path("run", "coordination_bot.ready")
        self._ready = False

    async def start(self) -> AsyncClient:
        creds = await obtain_credentials(self.deployment)
        store = self.deployment.path("bot", "store")
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        client = AsyncClient(
            self.settings.homeserver.url,
            creds.user_id,
            device_id=creds.device_id,
            store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        client.restore_login(creds.user_id, creds.device_id, creds.access_token)
        client.add_event_callback(self._on_invite, InviteMemberEvent)  # type: ignore[arg-type]
        client.add_event_callback(self._on_message, RoomMessageText)  # type: ignore[arg-type]
        client.add_event_callback(self._on_undecryptable, MegolmEvent)  # type: ignore[arg-type]
        client.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]
        self.client = client
        return client

    async def _on_sync(self, _: SyncResponse) -> None:
        if not self._ready:
            self._ready = True
            self._ready_path.write_text(str(self.started_ms), encoding="utf-8")
            log.info("bot ready as %s", self.settings.bot_user_id)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        assert self.client is not None
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if _server_of(event.sender) != self.settings.server_name:
            log.info("declining invite from another server")
            await self.client.room_leave(room.room_id)
            return
        result = await self.client.join(room.room_id)
        log.info("joined room on invite: %s", type(result).__name__)

    def _is_fresh(self, event: Any) -> bool:
        return bool(event.server_timestamp >= self.started_ms - 2000)

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        assert self.client is not None
        if event.sender == self.client.user_id or not self._is_fresh(event):
            return
        words = event.body.strip().split()
        if not words or not words[0].startswith("!"):
            return
        command = words[0].lower()
        if command in HELP_WORDS:
            plain, html = help_message(HELP_WORDS[command])
            await self.reply(room.room_id, event.event_id, plain, html)
        else:
            await self.reply(
                room.room_id, event.event_id, unknown_command(self.settings.bot.language, words[0])
            )

    async def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        assert self.client is not None
        if not self._is_fresh(event):
            return
        log.warning("undecryptable event in a room; requesting the room key")
        with contextlib.suppress(Exception):
            await self.client.request_room_key(event)
        await self.reply(room.room_id, event.event_id, UNDECRYPTABLE_FR)

    async def reply(self, room_id: str, event_id: str, plain: str, html: str | None = None) -> None:
        """Answer in the thread of the command (with a reply fallback for older clients)."""
        assert self.client is not None
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": plain,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": event_id,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": event_id},
            },
        }
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        response = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        if not hasattr(response, "event_id"):
            log.error("reply failed: %s", getattr(response, "message", response))

    async def run_forever(self) -> None:
        client = await self.start()
        delay = 1.0
        while True:
            try:
                await client.sync_forever(timeout=30000, full_state=True)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("sync interrupted (%s); retrying in %.0f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)


async def _main(deployment: Deployment) -> None:
    bot = CoordinationBot(deployment)
    bot._ready_path.unlink(missing_ok=True)
    task = asyncio.create_task(bot.run_forever())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("bot stopping")
    finally:
        if bot.client is not None:
            await bot.client.close()
        bot._ready_path.unlink(missing_ok=True)


def run(deployment: Deployment) -> None:
    asyncio.run(_main(deployment))
