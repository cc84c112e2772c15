"""The one place where the module reaches below Synapse's public module API.

Listing the rooms that carry a given state event type has no public API call; it is read
from Synapse's ``current_state_events`` table through ``ModuleApi.run_db_interaction``.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi


async def rooms_with_state(api: ModuleApi, event_type: str) -> list[str]:
    def query(txn: Any) -> list[str]:
        txn.execute(
            "SELECT room_id FROM current_state_events WHERE type = ? AND state_key = ''",
            (event_type,),
        )
        return [row[0] for row in txn.fetchall()]

    rooms: list[str] = await api.run_db_interaction("maillon_patient_rooms", query)
    return rooms
