"""The bot and the mail relay sync with the whole state of their rooms once, then only what
changes. nio's ``sync_forever(full_state=True)`` asks the whole state at every sync (the
state of every patient room the bot is in, at each event): a real nio client against a
homeserver's ``/sync`` that records what each request asked. Every one of their syncs also
leaves out what they never read (presence, typing and receipts, account data), and their
crypto store writes through SQLite's write-ahead log."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from nio import AsyncClient, AsyncClientConfig

from maillon.shared.matrix_session import SYNC_PAUSE_MS, sync_from_full_state


async def _syncs(client: AsyncClient, server: TestServer, enough: asyncio.Event) -> None:
    """Let ``client`` sync against the started ``server`` until it has answered enough."""
    syncing = asyncio.create_task(sync_from_full_state(client, timeout_ms=10))
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        syncing.cancel()
        await asyncio.gather(syncing, return_exceptions=True)
        await client.close()
        await server.close()


def _recording_server(
    asked: list[dict[str, str]], enough: asyncio.Event, at: list[float] | None = None
) -> TestServer:
    async def sync(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        if at is not None:
            at.append(time.monotonic())
        if len(asked) >= 4:
            enough.set()
        await asyncio.sleep(0.01)
        return web.json_response({"next_batch": f"s{len(asked)}"})

    async def keys_upload(_: web.Request) -> web.Response:
        return web.json_response({"one_time_key_counts": {"signed_curve25519": 50}})

    app = web.Application()
    app.router.add_get("/_matrix/client/v3/sync", sync)
    app.router.add_get("/_matrix/client/r0/sync", sync)
    app.router.add_post("/_matrix/client/v3/keys/upload", keys_upload)
    return TestServer(app)


async def test_only_the_first_sync_asks_the_whole_state() -> None:
    asked: list[dict[str, str]] = []
    enough = asyncio.Event()
    server = _recording_server(asked, enough)
    await server.start_server()
    client = AsyncClient(str(server.make_url("")).rstrip("/"), "@maillon:sante.test")
    client.access_token, client.user_id, client.device_id = "t", "@maillon:sante.test", "D"
    await _syncs(client, server, enough)
    assert asked[0].get("full_state") == "true"
    assert all(q.get("full_state") in (None, "false") for q in asked[1:]), asked


async def test_syncs_answered_at_once_are_spaced_out() -> None:
    """A homeserver with events waiting answers each sync at once: the next one is asked
    only after a pause, so one sync brings the events of that pause together (under load,
    each event of every patient room would otherwise cost the homeserver a sync)."""
    asked: list[dict[str, str]] = []
    at: list[float] = []
    enough = asyncio.Event()
    server = _recording_server(asked, enough, at)
    await server.start_server()
    client = AsyncClient(str(server.make_url("")).rstrip("/"), "@maillon:sante.test")
    client.access_token, client.user_id, client.device_id = "t", "@maillon:sante.test", "D"
    await _syncs(client, server, enough)
    # The whole state first, then incremental syncs, each after a pause.
    gaps = [later - earlier for earlier, later in itertools.pairwise(at[1:])]
    assert gaps and min(gaps) >= SYNC_PAUSE_MS / 1000, gaps


async def test_every_sync_leaves_out_what_a_service_account_never_reads(
    tmp_path: Path,
) -> None:
    asked: list[dict[str, str]] = []
    enough = asyncio.Event()
    server = _recording_server(asked, enough)
    await server.start_server()
    client = AsyncClient(
        str(server.make_url("")).rstrip("/"),
        "@coordination:sante.test",
        device_id="MAILLONBOT",
        store_path=str(tmp_path),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    client.restore_login("@coordination:sante.test", "MAILLONBOT", "t")
    await _syncs(client, server, enough)
    for query in asked:
        sync_filter = json.loads(query["filter"])
        assert sync_filter["presence"] == {"not_types": ["*"]}, query
        assert sync_filter["account_data"] == {"not_types": ["*"]}, query
        assert sync_filter["room"]["ephemeral"] == {"not_types": ["*"]}, query
        # Reactions are left out of the timeline; its other events, the rooms' state and
        # to-device messages (room keys) still come.
        assert sync_filter["room"]["timeline"] == {"not_types": ["m.reaction"]}, query
        assert "state" not in sync_filter["room"] and "to_device" not in sync_filter
    assert _journal_mode(tmp_path) == "wal"


def _journal_mode(store_dir: Path) -> str:
    (store,) = store_dir.glob("*.db")
    with sqlite3.connect(store) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
