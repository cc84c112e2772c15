"""The bot's Matrix session: appservice-namespace account, stable device, persisted token."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from nio import AsyncClient, SyncResponse

from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)

DEVICE_ID = "MAILLONBOT"


class SessionError(Exception):
    """The bot cannot obtain a Matrix session; the message says why."""


@dataclass(frozen=True)
class Credentials:
    user_id: str
    device_id: str
    access_token: str


def _credentials_path(deployment: Deployment) -> Path:
    return deployment.path("bot", "credentials.json")


DEVICE_NAME = "Maillon — bot de coordination"


def _save(path: Path, creds: Credentials) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(creds.__dict__, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: dict[str, Any] | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None)
        return resp.status, data if isinstance(data, dict) else {}


async def obtain_credentials(
    deployment: Deployment,
    device_id: str = DEVICE_ID,
    credentials_path: Path | None = None,
    device_name: str = DEVICE_NAME,
) -> Credentials:
    """Reuse the stored session if the homeserver still accepts it, else log in again
    with the same device id (so the crypto store stays valid). Another component acting
    as the bot account (the mail relay) passes its own device id and credentials path."""
    settings = deployment.settings
    base = settings.homeserver.url.rstrip("/") + "/_matrix/client/v3"
    as_token = deployment.secrets.as_token
    path = credentials_path or _credentials_path(deployment)
    async with aiohttp.ClientSession() as session:
        if path.exists():
            creds = Credentials(**json.loads(path.read_text(encoding="utf-8")))
            status, _ = await _call(
                session, "GET", f"{base}/account/whoami", creds.access_token, None
            )
            if status == 200:
                return creds
            log.warning("stored bot session refused (HTTP %s); logging in again", status)
        status, body = await _call(
            session,
            "POST",
            f"{base}/register",
            as_token,
            {
                "type": "m.login.application_service",
                "username": settings.bot.localpart,
                "inhibit_login": True,
            },
        )
        if status != 200 and body.get("errcode") != "M_USER_IN_USE":
            raise SessionError(f"création du compte du bot refusée : {body.get('error', status)}")
        status, body = await _call(
            session,
            "POST",
            f"{base}/login",
            as_token,
            {
                "type": "m.login.application_service",
                "identifier": {"type": "m.id.user", "user": settings.bot.localpart},
                "device_id": device_id,
                "initial_device_display_name": device_name,
            },
        )
        if status != 200:
            raise SessionError(f"connexion du bot refusée : {body.get('error', status)}")
        creds = Credentials(body["user_id"], body["device_id"], body["access_token"])
        await _call(
            session,
            "PUT",
            f"{base}/profile/{creds.user_id}/displayname",
            creds.access_token,
            {"displayname": settings.bot.display_name},
        )
    _save(path, creds)
    return creds


# What a service account's sync leaves out: presence, typing and read receipts, account
# data, and reactions in the timeline (people's, on any message).
# Neither the bot nor the mail relay reads any of them, and each costs the homeserver work
# (the bot's account syncs at every event of every patient room, from two devices: a
# reaction alone no longer ends a long poll). Rooms' other events and state, to-device
# messages (room keys) and device list changes still come.
SERVICE_SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "timeline": {"not_types": ["m.reaction"]},
    },
}


def write_ahead_log(client: AsyncClient) -> None:
    """Put the client's crypto store (nio's SQLite file) in write-ahead-log mode, for good
    (the mode stays with the file): each write — the sync token saved at every sync, on the
    event loop — is then one fsync instead of the rollback journal's three or four, as
    durable (``synchronous`` stays FULL)."""
    store = client.store
    if store is not None:
        store.database.execute_sql("PRAGMA journal_mode=WAL")


# After each answered sync, a service account waits this long before asking the next one.
# Its account is in every patient room: without a pause, each event of any of them (its
# own answers included) ends a long poll and makes the homeserver compute, serialise and
# send a sync, for each of its two devices — the homeserver's largest cost per bot
# command under load. Paused, a sync brings every event of the last few tens of
# milliseconds at once; at rest, an event still ends a long poll at once (the pause comes
# after it), so a lone command waits for nothing.
SYNC_PAUSE_MS = 50


async def sync_from_full_state(client: AsyncClient, timeout_ms: int = 30000) -> str:
    """Sync a client for good: the whole state of its rooms once (its store keeps only the
    sync token: after a restart its rooms are unknown until then), then only what changes.
    nio's ``sync_forever(full_state=True)`` asks the whole state at every sync — the state
    of every room the account is in, again at each event. Every sync asks only what a
    service account uses (``SERVICE_SYNC_FILTER``), ``SYNC_PAUSE_MS`` after the previous
    one; the store is put in write-ahead-log mode first. Returns why it stopped (an error
    answer's name); network errors are raised."""
    write_ahead_log(client)
    response = await client.sync(timeout=0, full_state=True, sync_filter=SERVICE_SYNC_FILTER)
    if not isinstance(response, SyncResponse):
        return type(response).__name__
    await client.run_response_callbacks([response])
    await client.sync_forever(
        timeout=timeout_ms, sync_filter=SERVICE_SYNC_FILTER, loop_sleep_time=SYNC_PAUSE_MS
    )
    return "end of sync"
