"""The directory room, created by whichever of Maillon's processes needs it first: its
alias resolves before its creator is in it (Synapse publishes the alias first), and two
processes may try to create it at once. Every binding must land in the one room."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appservice.directory import bind_directory_entry
from appservice.matrix_api import AppserviceApi
from maillon.shared.circle import DIRECTORY_ALIAS_LOCALPART, DIRECTORY_EVENT, DirectoryEntry
from tests.harness.stack import Stack

BINDINGS = 6


async def test_concurrent_first_bindings_all_land_in_one_directory_room(tmp_path: Path) -> None:
    # Synapse alone: no appservice process creating the room at start, so the bindings
    # below are the first to need it, all at the same moment.
    stack = Stack.create(tmp_path / "stack")
    stack.start(argv=["up", "--dir", str(stack.directory), "--only", "synapse"])
    try:
        deployment = stack.deployment
        server = deployment.settings.server_name
        entries = [
            DirectoryEntry(f"@pro{i}:{server}", "infirmier", rpps=f"1000000000{i}")
            for i in range(BINDINGS)
        ]

        async def bind(entry: DirectoryEntry) -> None:
            async with AppserviceApi.for_deployment(deployment) as api:  # one process each
                await bind_directory_entry(api, server, entry)

        await asyncio.gather(*(bind(entry) for entry in entries))

        async with AppserviceApi.for_deployment(deployment) as api:
            room_id = await api.resolve_alias(f"#{DIRECTORY_ALIAS_LOCALPART}:{server}")
            assert room_id is not None
            state = await api.room_state(room_id)
        bound = {
            e["state_key"]: e["content"]["profession"]
            for e in state
            if e["type"] == DIRECTORY_EVENT
        }
        assert len(bound) == BINDINGS, bound
        assert set(bound.values()) == {"infirmier"}
    finally:
        assert stack.stop() == 0
