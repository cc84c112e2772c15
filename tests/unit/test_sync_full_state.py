"""The bot and the mail relay sync with the whole state of their rooms once, then only what
changes. nio's ``sync_forever(full_state=True)`` asks the whole state at every sync (the
state of every patient room the bot is in, at each event): a real nio client against a
homeserver's ``/sync`` that records what each request asked."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from nio import AsyncClient

from maillon.shared.matrix_session import sync_from_full_state


async def test_only_the_first_sync_asks_the_whole_state() -> None:
    asked: list[str | None] = []
    enough = asyncio.Event()

    async def sync(request: web.Request) -> web.Response:
        asked.append(request.query.get("full_state"))
        if len(asked) >= 4:
            enough.set()
        await asyncio.sleep(0.01)
        return web.json_response({"next_batch": f"s{len(asked)}"})

    app = web.Application()
    app.router.add_get("/_matrix/client/v3/sync", sync)
    app.router.add_get("/_matrix/client/r0/sync", sync)
    server = TestServer(app)
    await server.start_server()
    client = AsyncClient(str(server.make_url("")).rstrip("/"), "@maillon:sante.test")
    client.access_token, client.user_id, client.device_id = "t", "@maillon:sante.test", "D"
    syncing = asyncio.create_task(sync_from_full_state(client, timeout_ms=10))
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        syncing.cancel()
        await asyncio.gather(syncing, return_exceptions=True)
        await client.close()
        await server.close()
    assert asked[0] == "true"
    assert all(value in (None, "false") for value in asked[1:]), asked
