"""matrix-nio clients with end-to-end encryption, driven step by step by the tests."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    MatrixRoom,
    MegolmEvent,
    RoomCreateError,
    RoomMessageNotice,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    SyncError,
    UploadResponse,
)

from maillon.shared.homeserver_client import Registered

Message = RoomMessageText | RoomMessageNotice  # what people and the bot write

ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class E2EClient:
    """One professional's device: encryption on, its own crypto store."""

    def __init__(self, homeserver_url: str, account: Registered, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.client = AsyncClient(
            homeserver_url,
            account.user_id,
            device_id=account.device_id,
            store_path=str(store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.texts: list[tuple[str, Message]] = []
        self.undecryptable: list[tuple[str, MegolmEvent]] = []
        self.client.add_event_callback(self._on_text, (RoomMessageText, RoomMessageNotice))  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_megolm, MegolmEvent)  # type: ignore[arg-type]

    @property
    def user_id(self) -> str:
        return self.account.user_id

    async def _on_text(self, room: MatrixRoom, event: Message) -> None:
        self.texts.append((room.room_id, event))

    async def _on_megolm(self, room: MatrixRoom, event: MegolmEvent) -> None:
        self.undecryptable.append((room.room_id, event))

    async def sync(self, timeout_ms: int = 0) -> None:
        response = await self.client.sync(timeout=timeout_ms, full_state=True)
        if isinstance(response, SyncError):
            raise AssertionError(f"sync failed for {self.user_id}: {response.message}")
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        await self.client.send_to_device_messages()

    async def wait_until(
        self, predicate: Callable[[], Any], what: str, timeout: float = 30.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id}: timed out waiting for {what}")
            await self.sync(timeout_ms=300)

    async def create_room(
        self, invite: list[str], is_direct: bool = False, name: str | None = None
    ) -> str:
        response = await self.client.room_create(
            visibility=RoomVisibility.private,
            preset=RoomPreset.private_chat,
            is_direct=is_direct,
            invite=invite,
            name=name,
            initial_state=[ENCRYPTION_STATE],
        )
        if isinstance(response, RoomCreateError):
            raise AssertionError(f"room creation failed: {response.message}")
        room_id: str = response.room_id
        await self.wait_until(lambda: room_id in self.client.rooms, "the created room")
        return room_id

    async def accept_invite(self, room_id: str, timeout: float = 30.0) -> None:
        await self.wait_until(
            lambda: room_id in self.client.invited_rooms, f"invite to {room_id}", timeout
        )
        response = await self.client.join(room_id)
        if isinstance(response, JoinError):
            raise AssertionError(f"join failed: {response.message}")
        await self.wait_until(lambda: room_id in self.client.rooms, f"joined {room_id}")

    async def wait_for_member(self, room_id: str, user_id: str, timeout: float = 30.0) -> None:
        def joined() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users

        await self.wait_until(joined, f"{user_id} joined", timeout)

    async def send_text(self, room_id: str, body: str) -> str:
        await self.sync()
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        if not isinstance(response, RoomSendResponse):
            raise AssertionError(f"send failed: {response}")
        return str(response.event_id)

    async def send_file(self, room_id: str, data: bytes, name: str = "document.txt") -> str:
        """Upload a file encrypted (as Element does in an encrypted room) and send it;
        returns its ``mxc://`` address."""
        await self.sync()
        upload, keys = await self.client.upload(
            lambda *_: io.BytesIO(data), "text/plain", name, encrypt=True, filesize=len(data)
        )
        if not isinstance(upload, UploadResponse) or keys is None:
            raise AssertionError(f"upload failed: {upload}")
        content = {
            "msgtype": "m.file",
            "body": name,
            "file": {**keys, "url": upload.content_uri},
        }
        response = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        if not isinstance(response, RoomSendResponse):
            raise AssertionError(f"send failed: {response}")
        return str(upload.content_uri)

    async def wait_for_text(
        self, room_id: str, match: Callable[[Message], bool], timeout: float = 30.0
    ) -> Message:
        def found() -> Message | None:
            for rid, event in self.texts:
                if rid == room_id and match(event):
                    return event
            return None

        event: Message = await self.wait_until(found, f"a message in {room_id}", timeout)
        return event

    async def close(self) -> None:
        await self.client.close()


async def close_all(*clients: E2EClient) -> None:
    await asyncio.gather(*(c.close() for c in clients))
