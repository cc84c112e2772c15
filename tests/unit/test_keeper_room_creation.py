"""While the appservice creates a patient room, the keeper leaves its power levels to the
creator (a write in the middle of ``createRoom`` queues the creation's own invites behind
it), event handler and sweep alike; once created, the levels are settled like any room's.
Fakes the homeserver calls; the real flows are in the integration tests
(``test_dossier_rooms.py``: a new dossier's coordinator can invite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appservice.circle_keeper import CircleKeeper
from appservice.patient_rooms import RoomsInCreation
from maillon.shared.circle import (
    CIRCLE_EVENT,
    COORDINATOR_LEVEL,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    CircleEntry,
    DossierLink,
    patient_power_levels,
    user_state_key,
)
from synapse_modules import policy
from synapse_modules.audit import AuditLog

SERVICE = "@maillon:sante.test"
CTX = policy.PolicyContext("sante.test", SERVICE, "@coordination:sante.test")
COORD = "@coord:sante.test"
ROOM = "!r:sante.test"
LINK = DossierLink("D1", room_key="main")


class FakeApi:
    """A just-created patient room: its coordinator's entry, the template power levels."""

    def __init__(self) -> None:
        self.level_writes: list[dict[str, Any]] = []
        entry = CircleEntry(COORD, "COORD", coordinator=True, added_by=COORD)
        self.state: list[dict[str, Any]] = [
            {
                "type": "m.room.create",
                "state_key": "",
                "sender": SERVICE,
                "content": {PATIENT_ROOM_MARKER: True},
            },
            {
                "type": DOSSIER_EVENT,
                "state_key": "",
                "sender": SERVICE,
                "content": LINK.to_content(),
            },
            {
                "type": CIRCLE_EVENT,
                "state_key": user_state_key(COORD),
                "sender": SERVICE,
                "content": entry.to_content(),
            },
            {
                "type": "m.room.power_levels",
                "state_key": "",
                "sender": SERVICE,
                "content": patient_power_levels([]),
            },
            {
                "type": "m.room.member",
                "state_key": SERVICE,
                "sender": SERVICE,
                "content": {"membership": "join"},
            },
        ]

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        return self.state

    async def joined_rooms(self) -> list[str]:
        return [ROOM]

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        assert etype == "m.room.power_levels", etype
        self.level_writes.append(content)
        return "$w"


def _circle_event() -> dict[str, Any]:
    return {
        "room_id": ROOM,
        "sender": SERVICE,
        "type": CIRCLE_EVENT,
        "state_key": user_state_key(COORD),
        "content": {},
    }


async def test_power_levels_wait_for_the_end_of_the_creation(tmp_path: Path) -> None:
    api, creations = FakeApi(), RoomsInCreation()
    keeper = CircleKeeper(api, CTX, AuditLog(str(tmp_path), "t"), None, creations)  # type: ignore[arg-type]
    with creations.creating(LINK):
        await keeper.handle(_circle_event())
        assert await keeper.sweep() == 0
        assert api.level_writes == []
    await keeper.settle_power_levels(ROOM)
    assert [w["users"] for w in api.level_writes] == [{COORD: COORDINATOR_LEVEL}]


async def test_another_rooms_creation_does_not_hold_this_one(tmp_path: Path) -> None:
    api, creations = FakeApi(), RoomsInCreation()
    keeper = CircleKeeper(api, CTX, AuditLog(str(tmp_path), "t"), None, creations)  # type: ignore[arg-type]
    with creations.creating(DossierLink("D1", room_key="side-1")):
        await keeper.handle(_circle_event())
    assert [w["users"] for w in api.level_writes] == [{COORD: COORDINATOR_LEVEL}]
