"""Talking to the running coordination bot from an E2EE nio client: send a command, wait for
the bot's answer in the command's thread (a success begins with ✅, an error with ❌)."""

from __future__ import annotations

import time
from typing import Any

from tests.harness.matrix import E2EClient, Message
from tests.harness.stack import Stack


def relation(event: Any) -> dict[str, Any]:
    content = event.source.get("content", {})
    relates = content.get("m.relates_to") or {}
    return relates if isinstance(relates, dict) else {}


def replies_to(event: Any, event_id: str) -> bool:
    return bool((relation(event).get("m.in_reply_to") or {}).get("event_id") == event_id)


class BotChat:
    def __init__(self, stack: Stack, user: E2EClient) -> None:
        self.bot = stack.deployment.settings.bot_user_id
        self.user = user

    async def send(
        self, room_id: str, body: str, thread_root: str | None = None, reply_to: str | None = None
    ) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if thread_root is not None:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread_root,
                "is_falling_back": reply_to is None,
                "m.in_reply_to": {"event_id": reply_to or thread_root},
            }
        await self.user.sync()
        response = await self.user.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        event_id = getattr(response, "event_id", None)
        assert isinstance(event_id, str), f"send failed: {response}"
        return event_id

    async def answer(
        self, room_id: str, event_id: str, contains: str = "", timeout: float = 30.0
    ) -> Message:
        """The bot's answer to ``event_id`` (in its thread) whose text has ``contains``."""
        return await self.user.wait_for_text(
            room_id,
            lambda e: e.sender == self.bot and replies_to(e, event_id) and contains in e.body,
            timeout,
        )

    async def command(
        self,
        room_id: str,
        text: str,
        ok: bool = True,
        contains: str = "",
        thread_root: str | None = None,
        reply_to: str | None = None,
    ) -> tuple[str, Message]:
        started = time.monotonic()
        sent = await self.send(room_id, text, thread_root, reply_to)
        reply = await self.answer(room_id, sent, contains)
        assert reply.decrypted, "the bot answers encrypted in an encrypted room"
        root = thread_root or sent
        assert relation(reply).get("rel_type") == "m.thread"
        assert relation(reply).get("event_id") == root, "the answer is in the command's thread"
        assert reply.source["content"].get("format") == "org.matrix.custom.html"
        if ok:
            assert reply.body.startswith("✅ "), reply.body
            assert reply.source["content"]["formatted_body"].startswith("<p>✅ "), reply.source
        else:
            assert reply.body.startswith("❌") and "Usage" in reply.body, reply.body
        self.last_latency = time.monotonic() - started
        return sent, reply
