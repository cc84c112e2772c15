"""The bot's room keys go only to the care circle's devices in patient rooms; a narrower
circle than the one the current Megolm session went to starts a new session. Also: the
bot's own HTTP calls honour M_LIMIT_EXCEEDED / retry_after_ms."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from coordination_bot.bot import CircleClient
from maillon.shared.cross_signing import _call

A, B, OUTSIDER = "@a:localhost", "@b:localhost", "@x:localhost"


def _client(tmp_path: Path) -> tuple[CircleClient, list[list[str]]]:
    client = CircleClient(
        "http://127.0.0.1:9", "@coordination:localhost", "BOTDEVICE", store_path=str(tmp_path)
    )
    client.restore_login("@coordination:localhost", "BOTDEVICE", "token")
    shared_with: list[list[str]] = []

    def record(room_id: str, users: list[str], ignore_unverified_devices: bool = False) -> Any:
        shared_with.append(list(users))
        return iter(())

    client.olm.share_group_session_parallel = record
    client.install_recipient_filter()
    return client, shared_with


def test_keys_go_to_circle_members_only(tmp_path: Path) -> None:
    client, shared_with = _client(tmp_path)
    client.set_recipients("!patient:localhost", {A, B})
    list(client.olm.share_group_session_parallel("!patient:localhost", [A, B, OUTSIDER]))
    client.set_recipients("!direct:localhost", None)  # not a patient room: its members
    list(client.olm.share_group_session_parallel("!direct:localhost", [A, OUTSIDER]))
    assert shared_with == [[A, B], [A, OUTSIDER]]


def test_a_narrower_circle_starts_a_new_session(tmp_path: Path) -> None:
    client, _ = _client(tmp_path)
    room = "!patient:localhost"
    client.set_recipients(room, {A, B})
    client.olm.create_outbound_group_session(room)
    client.olm.outbound_group_sessions[room].shared = True
    first = client.olm.outbound_group_sessions[room].id
    client.set_recipients(room, {A, B, "@c:localhost"})  # someone joined: same session
    assert client.olm.outbound_group_sessions[room].id == first
    client.set_recipients(room, {A})  # B left the circle: B must not read what follows
    assert room not in client.olm.outbound_group_sessions


async def test_rate_limit_is_honoured(tmp_path: Path) -> None:
    calls: list[float] = []

    async def limited(_: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return web.json_response(
                {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300}, status=429
            )
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/keys", limited)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        result = await _call(session, str(server.make_url("/keys")), "token", {})
    assert result == {"ok": True}
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.3
