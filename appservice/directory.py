"""Directory bindings of professionals, kept as state of a private directory room that
only Maillon writes, so the Synapse module can check them without a network call."""

from __future__ import annotations

from appservice.matrix_api import AppserviceApi
from maillon.shared.circle import (
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DIRECTORY_ROOM_MARKER,
    DirectoryEntry,
    user_state_key,
)


async def ensure_directory_room(api: AppserviceApi, server_name: str) -> str:
    alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{server_name}"
    room_id = await api.resolve_alias(alias)
    if room_id is not None:
        return room_id
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
