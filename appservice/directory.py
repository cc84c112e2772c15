"""Directory bindings of professionals, kept as state of a private directory room that
only Maillon writes, so the Synapse module can check them without a network call."""

from __future__ import annotations

import asyncio
import time

from appservice.matrix_api import AppserviceApi, MatrixError
from maillon.shared.circle import (
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DIRECTORY_ROOM_MARKER,
    DirectoryEntry,
    user_state_key,
)

# How long a directory room another process is creating may take to have its creator in it.
CREATION_WAIT_SECONDS = 30.0


async def ensure_directory_room(api: AppserviceApi, server_name: str) -> str:
    """The directory room's id, once Maillon's service user is in it.

    Synapse publishes a new room's alias *before* it sends the room's first events, so a
    room another process (the appservice at start, the CLI, a login) is creating may
    resolve before its creator has joined: wait for the creator's membership then. Two
    processes creating it at once: the one refused the alias uses the other's room."""
    alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{server_name}"
    deadline = time.monotonic() + CREATION_WAIT_SECONDS
    delay = 0.05
    while True:
        room_id = await api.resolve_alias(alias)
        if room_id is None:
            try:
                return await _create_directory_room(api)
            except MatrixError as exc:
                # Synapse answers 409 (alias already exists) or 400 M_ROOM_IN_USE
                taken = exc.status == 409 or exc.errcode == "M_ROOM_IN_USE"
                if not taken or time.monotonic() > deadline:
                    raise
                continue  # created by another process meanwhile: resolve it again
        if await _service_user_joined(api, room_id):
            return room_id
        if time.monotonic() > deadline:
            raise MatrixError(
                503, "M_NOT_READY", f"la salle de l'annuaire {alias} n'est pas encore prête"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _service_user_joined(api: AppserviceApi, room_id: str) -> bool:
    try:
        member = await api.get_state(room_id, "m.room.member", api.sender)
    except MatrixError as exc:
        if exc.status == 403:  # not in the room (yet): its creation is under way
            return False
        raise
    return member is not None and member.get("membership") == "join"


async def _create_directory_room(api: AppserviceApi) -> str:
    return await api.create_room(
        {
            "preset": "private_chat",
            "visibility": "private",
            "name": "Annuaire Maillon (technique)",
            "room_alias_name": DIRECTORY_ALIAS_LOCALPART,
            "creation_content": {DIRECTORY_ROOM_MARKER: True},
            "room_version": "12",  # the creator (Maillon) keeps unlimited power
            "power_level_content_override": {
                "state_default": 100,
                "events_default": 100,
                "invite": 100,
            },
        }
    )


async def bind_directory_entry(api: AppserviceApi, server_name: str, entry: DirectoryEntry) -> None:
    room_id = await ensure_directory_room(api, server_name)
    await api.put_state(room_id, DIRECTORY_EVENT, user_state_key(entry.user_id), entry.to_content())
